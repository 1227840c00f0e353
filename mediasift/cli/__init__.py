"""`mediasift …` (typer + rich): one module per group of commands, all on one app."""

from mediasift.cli import ingest, recovery, search, stack, status
from mediasift.cli.app import app, run

__all__ = ["app", "ingest", "recovery", "run", "search", "stack", "status"]
