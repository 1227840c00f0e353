"""The `mediasift` command: its sub-apps, shared options, and how errors reach the user."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.console import Console

from mediasift.config import STACK_WAIT_S, Settings
from mediasift.errors import MediasiftError

app = typer.Typer(help="mediasift: bucket notifications in, queryable multimodal layers out.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
objects_app = typer.Typer(help="Inspect object versions and their lineage.", no_args_is_help=True)
app.add_typer(objects_app, name="objects")
dlq_app = typer.Typer(help="The dead-letter queue: object versions that failed all their attempts.",
                      no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
console = Console()
err = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]
BucketOption = Annotated[str | None, typer.Option(help="Only this bucket.")]
DlqTargets = Annotated[list[str] | None, typer.Argument(
    help="s3://BUCKET/KEY (its dead-lettered versions) or version hashes (partition keys).", show_default=False)]
DlqAll = Annotated[bool, typer.Option("--all", help="Every version in the DLQ (of --bucket, when given).")]


def load_settings(wait_for_stack: float = STACK_WAIT_S) -> Settings:
    """Commands that use the store wait for a starting stack; read-only ones pass 0 and report it."""
    return Settings.load(wait_for_stack)


def fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO.")] = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


def run() -> None:
    try:
        app()
    except MediasiftError as error:
        fail(str(error))
