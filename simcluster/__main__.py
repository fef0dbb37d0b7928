"""``python -m simcluster`` runs the CLI."""

from simcluster.cli.app import arrow_without_pandas, main

if __name__ == "__main__":  # not when imported (by a doctest collector, say)
    arrow_without_pandas()
    main()
