"""CLI commands of the review capability (serve, plot, export-reviews); registered by pipeline.cli."""

import typer


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the ``callqa`` app."""
