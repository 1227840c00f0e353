"""`mediasift …` (typer + rich)."""

from mediasift.cli.commands import app, run

__all__ = ["app", "run"]
