"""`mediasift …` (typer + rich): one module per group of commands, all on one app."""

from mediasift.cli import analysis, ingest, recovery, search, snapshot, stack, status
from mediasift.cli.app import app, run

__all__ = ["analysis", "app", "ingest", "recovery", "run", "search", "snapshot", "stack", "status"]
