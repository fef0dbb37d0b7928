"""``python -m simcluster`` runs the CLI."""

from simcluster.cli import main

main()
