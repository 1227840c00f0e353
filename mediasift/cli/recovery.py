"""Repairing what went wrong: the dead-letter queue and the reconcile sweep."""

from __future__ import annotations

import json
import re
import time
from typing import Annotated

import typer
from rich.table import Column, Table

from mediasift.cli.app import (
    BucketOption,
    DlqAll,
    DlqTargets,
    JsonOption,
    app,
    console,
    dlq_app,
    fail,
    load_settings,
)
from mediasift.errors import LockHeld
from mediasift.identity import parse_s3_uri
from mediasift.inbox import Inbox
from mediasift.intake.reconcile import sweep
from mediasift.query.lineage import version_json
from mediasift.store.s3 import ObjectStore


@dlq_app.command("list")
def dlq_list(bucket: BucketOption = None, as_json: JsonOption = False) -> None:
    """Dead-lettered versions, oldest failure first, with their last error."""
    entries = Inbox(load_settings().inbox_url, read_only=True).dead_letters(bucket)
    if as_json:
        console.print_json(json.dumps([version_json(v) for v in entries]))
        return
    table = Table(Column("object", overflow="fold"), "version", "attempts", "failed at",
                  Column("last error", overflow="fold"),
                  title=f"dead-letter queue: {len(entries)} version(s)")
    for v in entries:
        table.add_row(f"s3://{v.bucket}/{v.key}", v.version_hash, str(v.attempts),
                      time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v.updated_at)), v.last_error or "-")
    console.print(table)


@dlq_app.command("retry")
def dlq_retry(targets: DlqTargets = None, every: DlqAll = False, bucket: BucketOption = None,
              as_json: JsonOption = False) -> None:
    """Send versions through the pipeline again with fresh attempts (each gets a new run on the sensor's
    next tick). The object must still be in the bucket as that version, or it ends superseded or deleted."""
    inbox = Inbox(load_settings().inbox_url)
    redriven = inbox.redrive(_dead_lettered(inbox, targets, every, bucket))
    if as_json:
        console.print_json(json.dumps([version_json(v) for v in redriven]))
        return
    for v in redriven:
        console.print(f"retrying s3://{v.bucket}/{v.key} (version {v.version_hash})")
    console.print(f"{len(redriven)} version(s) sent again; watch them with `mediasift status`")


@dlq_app.command("purge")
def dlq_purge(targets: DlqTargets = None, every: DlqAll = False, bucket: BucketOption = None,
              yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
              as_json: JsonOption = False) -> None:
    """Take versions out of the DLQ without trying again: they stay failed, with their last error."""
    inbox = Inbox(load_settings().inbox_url)
    hashes = _dead_lettered(inbox, targets, every, bucket)
    if not yes and not typer.confirm(f"Purge {len(hashes)} version(s) from the dead-letter queue?"):
        raise typer.Exit(1)
    purged = inbox.purge(hashes)
    console.print_json(json.dumps({"purged": purged})) if as_json else console.print(f"purged {purged} version(s)")


def _dead_lettered(inbox: Inbox, targets: list[str] | None, every: bool, bucket: str | None) -> list[str]:
    """The version hashes the user named (every one must be in the DLQ), or the whole DLQ with --all."""
    if every == bool(targets):
        fail("either name versions (s3://BUCKET/KEY or a version hash) or pass --all")
    if every:
        return [v.version_hash for v in inbox.dead_letters(bucket)]
    hashes = []
    for target in targets or []:
        if re.fullmatch(r"[0-9a-f]{16}", target):
            versions = [v for v in [inbox.version(target)] if v]
        else:
            try:
                versions = inbox.versions_of(*parse_s3_uri(target))
            except ValueError as error:
                fail(f"{error} or a version hash")
        found = [v.version_hash for v in versions if v.in_dlq]
        if not found:
            fail(f"{target} has no version in the dead-letter queue (see `mediasift dlq list`)")
        hashes += found
    return hashes


@app.command()
def reconcile(bucket: Annotated[str | None, typer.Option(help="Bucket to sweep.")] = None,
              as_json: JsonOption = False) -> None:
    """List the bucket now and enqueue every version or deletion the inbox missed."""
    settings = load_settings()
    try:
        result = sweep(Inbox(settings.inbox_url), ObjectStore.from_settings(settings), bucket or settings.bucket,
                       ignore_prefix=settings.derived_prefix)
    except LockHeld as held:
        fail(f"another sweep is running ({held})")
    payload = {"bucket": result.bucket, "listed": result.listed, "missed_created": result.created,
               "missed_deleted": result.deleted}
    console.print_json(json.dumps(payload)) if as_json else console.print(payload)
