"""`mediasift snapshot create|list|fork`: the bucket, the index and the feature tables as of one moment."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Column, Table

from mediasift.cli.app import JsonOption, app, console, fail, load_settings
from mediasift.snapshots import SnapshotError, SnapshotRecord, Snapshots

snapshot_app = typer.Typer(help="Snapshots of the bucket with its index and feature tables (Tigris: native, "
                                "forkable; other stores: a manifest of object versions).", no_args_is_help=True)
app.add_typer(snapshot_app, name="snapshot")
NameArgument = Annotated[str, typer.Argument(help="The snapshot's name: letters, digits, '.', '-', '_'.")]


@snapshot_app.command("create")
def create(name: NameArgument, as_json: JsonOption = False) -> None:
    """Snapshot the bucket, tag the index's table versions and keep the feature-table files."""
    settings = load_settings()
    try:
        record = Snapshots(settings).create(name)
    except SnapshotError as error:
        fail(str(error))
    if as_json:
        console.print_json(json.dumps(record.to_json()))
        return
    console.print(_details(record))


@snapshot_app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """The bucket's snapshots, oldest first (on Tigris, also those taken outside mediasift)."""
    try:
        records = Snapshots(load_settings(wait_for_stack=0)).list()
    except SnapshotError as error:
        fail(str(error))
    if as_json:
        console.print_json(json.dumps([r.to_json() for r in records]))
        return
    if not records:
        console.print("no snapshots yet (take one with `mediasift snapshot create NAME`)")
        return
    table = Table(Column("name", no_wrap=True), "created", "store", "objects", "index tables", "feature files",
                  "inbox seq", title=f"snapshots of s3://{records[0].bucket}", title_justify="left")
    for r in records:
        table.add_row(r.name, r.created_at[:19], _store(r), _or_dash(r.objects),
                      str(len(r.lance_versions)) if r.recorded else "-",
                      str(r.feature_files) if r.recorded else "-", _or_dash(r.inbox and r.inbox.last_seq))
    console.print(table)


@snapshot_app.command("fork")
def fork(name: NameArgument,
         new_bucket: Annotated[str, typer.Argument(help="The bucket to create from the snapshot.")],
         as_json: JsonOption = False) -> None:
    """A new Tigris bucket holding exactly the snapshot's objects (Tigris only)."""
    try:
        forked = Snapshots(load_settings()).fork(name, new_bucket)
    except SnapshotError as error:
        fail(str(error))
    if as_json:
        console.print_json(json.dumps(forked))
        return
    console.print(f"forked s3://{forked['source_bucket']} at snapshot {name} (version {forked['snapshot_version']}) "
                  f"into s3://{forked['bucket']}")


def _details(r: SnapshotRecord) -> Table:
    table = Table(show_header=False, title=f"snapshot {r.name}", title_justify="left")
    table.add_row("bucket", f"s3://{r.bucket}  ({_store(r)})")
    table.add_row("created", r.created_at)
    if r.tigris_version:
        table.add_row("tigris version", r.tigris_version)
    else:
        table.add_row("objects", f"{r.objects} ({'VersionIds' if r.versioned else 'ETags only: bucket not versioned'})")
    table.add_row("index", ", ".join(f"{t}@v{v}" for t, v in r.lance_versions.items()) or "-")
    table.add_row("lance tag", r.lance_tag or "-")
    table.add_row("feature files", str(r.feature_files))
    if r.inbox:
        table.add_row("inbox", f"last event seq {r.inbox.last_seq}, {r.inbox.depth} pending")
    return table


def _store(r: SnapshotRecord) -> str:
    if r.tigris_version:
        return "tigris" if r.recorded else "tigris, not taken by mediasift"
    return "manifest" + ("" if r.versioned else ", no versioning")


def _or_dash(value: object) -> str:
    return "-" if value is None else str(value)
