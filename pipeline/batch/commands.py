"""CLI commands of the batch capability (batch, export, reanalyze, stats); registered by pipeline.cli."""

import typer


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the ``callqa`` app."""
