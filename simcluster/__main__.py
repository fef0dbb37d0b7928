"""``python -m simcluster`` runs the CLI."""

from simcluster.cli import main

if __name__ == "__main__":  # not when imported (by a doctest collector, say)
    main()
