"""The command-line interface (Typer): ``simcluster ...``."""

from simcluster.cli.app import app, main

__all__ = ["app", "main"]
