"""`mediasift ingest`: upload files; the bucket's notifications do the rest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mediasift.cli.app import (
    JsonOption,
    app,
    console,
    err,
    fail,
    load_settings,
)
from mediasift.cli.uploads import Upload, plan_uploads, wait_settled
from mediasift.inbox import Inbox, State
from mediasift.store.s3 import ObjectStore


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories to upload.")],
    bucket: Annotated[str | None, typer.Option(help="Target bucket (default: MEDIASIFT_BUCKET).")] = None,
    prefix: Annotated[str, typer.Option(help="Key prefix; a directory's files keep their relative paths.")] = "",
    wait: Annotated[bool, typer.Option("--wait", help="Return when every uploaded version is done or failed.")]
    = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 600,
    as_json: JsonOption = False,
) -> None:
    """Upload files; the bucket's notifications do the rest."""
    settings = load_settings()
    bucket = bucket or settings.bucket
    try:
        plan = plan_uploads(paths, prefix)
    except FileNotFoundError as error:
        fail(str(error))
    uploaded = upload_files(ObjectStore.from_settings(settings), plan, bucket)
    states: dict[str, State | None] = {}
    if wait:
        states = wait_processed(Inbox(settings.inbox_url), bucket, uploaded, timeout)
    rows = [{"bucket": bucket, "key": key, "etag": etag, "state": (states.get(key) or "uploaded")}
            for key, etag in uploaded.items()]
    if as_json:
        console.print_json(json.dumps(rows, default=str))
    else:
        table = Table("key", "etag", "state", title=f"uploaded to s3://{bucket}")
        for row in rows:
            table.add_row(row["key"], row["etag"], str(row["state"]))
        console.print(table)
    if wait and any(s is not State.DONE for s in states.values()):
        raise typer.Exit(1)


def upload_files(storage: ObjectStore, plan: list[Upload], bucket: str) -> dict[str, str]:
    total = sum(u.path.stat().st_size for u in plan)
    uploaded: dict[str, str] = {}
    with Progress(TextColumn("uploading"), BarColumn(), DownloadColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True) as progress:
        task = progress.add_task("upload", total=total)
        files = progress.add_task("files", total=len(plan), visible=False)
        for item in plan:
            uploaded[item.key] = storage.upload(item.path, bucket, item.key,
                                                callback=lambda n: progress.advance(task, n))
            progress.advance(files)
    return uploaded


def wait_processed(inbox: Inbox, bucket: str, uploaded: dict[str, str], timeout: float) -> dict[str, State | None]:
    with Progress(TextColumn("processing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as progress:
        task = progress.add_task("wait", total=len(uploaded))
        return wait_settled(inbox, bucket, uploaded, timeout=timeout,
                            on_progress=lambda n: progress.update(task, completed=n))
