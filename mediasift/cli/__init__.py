"""`mediasift …` (typer + rich): one module per group of commands, all on one app."""

from mediasift.cli import analysis, index, ingest, recovery, replay, search, snapshot, stack, status
from mediasift.cli.app import app, run

__all__ = ["analysis", "app", "index", "ingest", "recovery", "replay", "run", "search", "snapshot", "stack", "status"]
