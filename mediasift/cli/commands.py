"""`mediasift …`: start the stack, ingest files, and look at what the pipeline knows."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from mediasift.cli.uploads import Upload, plan_uploads, wait_settled
from mediasift.config import Settings
from mediasift.errors import LockHeld, MediasiftError
from mediasift.extraction.layers.rows import LAYERS
from mediasift.extraction.models import models_for
from mediasift.identity import parse_s3_uri
from mediasift.inbox import Inbox, State
from mediasift.intake.reconcile import sweep
from mediasift.local.samples import write_samples
from mediasift.local.stack import DagsterMode, Stack
from mediasift.query.lineage import layer_counts, version_json
from mediasift.query.search import TEXT_LAYERS, Filters, Hit, Searcher
from mediasift.store.lance import LanceIndex
from mediasift.store.s3 import Storage

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


def _settings() -> Settings:
    return Settings.load()


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO.")] = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


@app.command()
def up() -> None:
    """Start SeaweedFS (S3 + webhook), the receiver and the Dagster UI + daemon; Ctrl-C stops all."""
    with Stack(_settings(), DagsterMode.DEV) as stack:
        table = Table(title="mediasift is up", show_header=False)
        table.add_row("S3 endpoint", stack.settings.s3_endpoint_url)
        table.add_row("bucket", stack.settings.bucket)
        table.add_row("receiver", f"{stack.receiver.url}  (docs: {stack.receiver.url}/docs)")
        table.add_row("Dagster UI", stack.dagster_url)
        table.add_row("extraction", f"Ray at {stack.ray_head.address}" if stack.ray_head else
                      "inline (set MEDIASIFT_RAY=local for warm Ray actors)")
        table.add_row("home", str(stack.home))
        console.print(table)
        console.print("Upload with [bold]mediasift ingest PATH[/bold] in another shell. Ctrl-C stops everything.")
        _wait_for_interrupt()


def _wait_for_interrupt() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()


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
    settings = _settings()
    bucket = bucket or settings.bucket
    try:
        plan = plan_uploads(paths, prefix)
    except FileNotFoundError as error:
        _fail(str(error))
    uploaded = _upload(Storage.from_settings(settings), plan, bucket)
    states: dict[str, State | None] = {}
    if wait:
        states = _wait(Inbox(settings.inbox_url), bucket, uploaded, timeout)
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


def _upload(storage: Storage, plan: list[Upload], bucket: str) -> dict[str, str]:
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


def _wait(inbox: Inbox, bucket: str, uploaded: dict[str, str], timeout: float) -> dict[str, State | None]:
    with Progress(TextColumn("processing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as progress:
        task = progress.add_task("wait", total=len(uploaded))
        return wait_settled(inbox, bucket, uploaded, timeout=timeout,
                            on_progress=lambda n: progress.update(task, completed=n))


@app.command()
def status(as_json: JsonOption = False) -> None:
    """Counts of object versions per state, the inbox depth and the endpoints in use."""
    settings = _settings()
    inbox = Inbox(settings.inbox_url)
    stack = settings.stack_info()
    report = {
        **inbox.counts(),
        "inbox_depth": inbox.depth(),
        "last_event_seq": inbox.last_seq(),
        "visual": {
            "model": settings.clip_model,
            "weights": settings.clip_checkpoint or settings.clip_pretrained,
            "untrained": not (settings.clip_checkpoint or settings.clip_pretrained),
        },
        "endpoints": {
            "s3": settings.s3_endpoint_url,
            "bucket": settings.bucket,
            "receiver": stack.get("receiver_url"),
            "dagster": stack.get("dagster_url"),
            "ray": stack.get("ray_address") or (settings.ray if settings.ray != "off" else None),
            "inbox": inbox.engine.url.render_as_string(hide_password=True),
        },
    }
    if as_json:
        console.print_json(json.dumps(report))
        return
    table = Table("state", "versions", title="object versions")
    for state in [*(s.value for s in State), "dlq"]:
        table.add_row(state, str(report[state]))
    console.print(table)
    console.print(f"inbox depth {report['inbox_depth']}, last event seq {report['last_event_seq']}")
    if report["visual"]["untrained"]:
        console.print(f"[yellow]visual layer: {settings.clip_model} is UNTRAINED (no CLIP weights configured: set "
                      "MEDIASIFT_CLIP_PRETRAINED or MEDIASIFT_CLIP_CHECKPOINT); its vectors find duplicates, "
                      "not meaning[/yellow]")
    for name, value in report["endpoints"].items():
        console.print(f"{name:>9}: {value or '-'}")


@objects_app.command("show")
def objects_show(uri: Annotated[str, typer.Argument(help="s3://BUCKET/KEY")], as_json: JsonOption = False) -> None:
    """Every known version of one object: state, ETag, lineage, and its rows in each layer."""
    try:
        bucket, key = parse_s3_uri(uri)
    except ValueError as error:
        _fail(str(error))
    settings = _settings()
    versions = Inbox(settings.inbox_url).versions_of(bucket, key)
    if not versions:
        _fail(f"no version of {uri} is known to the inbox")
    index = LanceIndex(settings.lance_location)
    described = [{**version_json(v), "layers": layer_counts(index, v.version_hash)} for v in versions]
    if as_json:
        console.print_json(json.dumps(described))
        return
    for facts in described:
        table = Table(show_header=False, title=f"{uri}  version {facts['partition_key']}", title_justify="left")
        for name in ("bucket", "key", "etag", "version_id", "object_id", "partition_key", "state", "attempts",
                     "size", "content_type", "sha256", "last_error"):
            value = facts[name]
            if name == "state" and facts["in_dlq"]:
                value = f"{value} (in DLQ)"
            table.add_row(name, "-" if value is None else str(value))
        table.add_row("layers", ", ".join(f"{layer} {n}" for layer, n in facts["layers"].items()))
        console.print(table)


@dlq_app.command("list")
def dlq_list(bucket: BucketOption = None, as_json: JsonOption = False) -> None:
    """Dead-lettered versions, oldest failure first, with their last error."""
    entries = Inbox(_settings().inbox_url).dead_letters(bucket)
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
    inbox = Inbox(_settings().inbox_url)
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
    inbox = Inbox(_settings().inbox_url)
    hashes = _dead_lettered(inbox, targets, every, bucket)
    if not yes and not typer.confirm(f"Purge {len(hashes)} version(s) from the dead-letter queue?"):
        raise typer.Exit(1)
    purged = inbox.purge(hashes)
    console.print_json(json.dumps({"purged": purged})) if as_json else console.print(f"purged {purged} version(s)")


def _dead_lettered(inbox: Inbox, targets: list[str] | None, every: bool, bucket: str | None) -> list[str]:
    """The version hashes the user named (every one must be in the DLQ), or the whole DLQ with --all."""
    if every == bool(targets):
        _fail("either name versions (s3://BUCKET/KEY or a version hash) or pass --all")
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
                _fail(f"{error} or a version hash")
        found = [v.version_hash for v in versions if v.in_dlq]
        if not found:
            _fail(f"{target} has no version in the dead-letter queue (see `mediasift dlq list`)")
        hashes += found
    return hashes


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for, in words.")],
    layer: Annotated[list[str] | None, typer.Option("--layer", "-l", help=f"Only these layers ({', '.join(LAYERS)}); "
                                                    "visual is searched only when named.")] = None,
    modality: Annotated[str | None, typer.Option(help="video, audio, image or pdf.")] = None,
    prefix: Annotated[str | None, typer.Option(help="Only keys starting with this.")] = None,
    k: Annotated[int, typer.Option("-k", help="Number of hits.")] = 10,
    group: Annotated[bool, typer.Option("--group", help="Group hits by object.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Hybrid search (vector + full text) over every layer; each hit is a timestamp or a page."""
    settings = _settings()
    searcher = Searcher(LanceIndex(settings.lance_location), models_for(settings))
    try:
        filters = Filters(tuple(layer) if layer else TEXT_LAYERS, modality, prefix)
        hits = searcher.search(query, k, filters)
    except ValueError as error:
        _fail(str(error))
    if as_json:
        payload = [h.to_json() for h in hits]
        if group:
            payload = [{**g.__dict__, "hits": [h.to_json() for h in g.hits]}
                       for g in searcher.search_grouped(query, k, filters)]
        console.print_json(json.dumps(payload))
        return
    print_hits(query, hits)


def print_hits(query: str, hits: list[Hit]) -> None:
    table = Table("score", Column("object", overflow="fold"), Column("where", no_wrap=True), "layer",
                  Column("text", ratio=1), title=f"search: {query}", title_justify="left")
    for hit in hits:
        table.add_row(f"{hit.score:.4f}", f"s3://{hit.bucket}/{hit.key}", _where(hit),
                      hit.layer + (" (untrained)" if hit.untrained else ""), hit.text[:90].replace("\n", " "))
    console.print(table if hits else f"no hits for {query!r}")
    if any(h.untrained for h in hits):
        console.print("[yellow]visual hits come from an UNTRAINED CLIP model (no weights configured): their "
                      "ranking carries no meaning[/yellow]")


def _where(hit: Hit) -> str:
    if hit.page is not None:
        return f"page {hit.page}"
    if hit.t_start is not None:
        return f"{hit.t_start:.1f}-{hit.t_end:.1f} s"
    return "-"


@app.command()
def reconcile(bucket: Annotated[str | None, typer.Option(help="Bucket to sweep.")] = None,
              as_json: JsonOption = False) -> None:
    """List the bucket now and enqueue every version or deletion the inbox missed."""
    settings = _settings()
    try:
        result = sweep(Inbox(settings.inbox_url), Storage.from_settings(settings), bucket or settings.bucket,
                       ignore_prefix=settings.derived_prefix)
    except LockHeld as held:
        _fail(f"another sweep is running ({held})")
    payload = {"bucket": result.bucket, "listed": result.listed, "missed_created": result.created,
               "missed_deleted": result.deleted}
    console.print_json(json.dumps(payload)) if as_json else console.print(payload)


@app.command()
def receiver(host: Annotated[str | None, typer.Option(help="Bind address (default MEDIASIFT_RECEIVER_HOST, "
                                                     "127.0.0.1).")] = None,
             port: Annotated[int | None, typer.Option(help="Port (default MEDIASIFT_RECEIVER_PORT).")] = None) -> None:
    """Serve only the webhook receiver (production: several behind a load balancer)."""
    import uvicorn

    from mediasift.intake.receiver import create_app

    settings = _settings()
    uvicorn.run(create_app(settings), host=host or settings.receiver_host, port=port or settings.receiver_port,
                access_log=False)


@app.command()
def demo(timeout: Annotated[float, typer.Option(help="Seconds to wait for indexing.")] = 900) -> None:
    """Start the stack, upload the sample media (video, speech, PDFs, images), wait until every object is
    indexed, run sample searches, print the hits, stop. Exits 1 if a search misses its known answer."""
    settings = _settings()
    with Stack(settings, DagsterMode.DAEMON) as stack, tempfile.TemporaryDirectory() as tmp:
        console.print(f"stack up: S3 {stack.settings.s3_endpoint_url}, receiver {stack.receiver.url}")
        folder = Path(tmp) / "samples"
        write_samples(folder)
        uploaded = _upload(Storage.from_settings(stack.settings), plan_uploads([folder], "demo/"),
                           stack.settings.bucket)
        states = _wait(Inbox(stack.settings.inbox_url), stack.settings.bucket, uploaded, timeout)
        table = Table("key", "etag", "state", title="demo objects")
        for key, etag in uploaded.items():
            table.add_row(key, etag, str(states[key]))
        console.print(table)
        if any(s is not State.DONE for s in states.values()):
            _fail(f"not every demo object was indexed; see {stack.dagster_home / 'dagster.log'}")
        searcher = Searcher(LanceIndex(stack.settings.lance_location), models_for(stack.settings))
        missed = 0
        for query, expected, check in DEMO_QUERIES:
            hits = searcher.search(query, 3)
            print_hits(query, hits)
            found = bool(hits) and hits[0].key.removeprefix("demo/") in expected and check(hits[0])
            missed += not found
            console.print(f"{'[green]✓' if found else '[red]✗'} expected first: {' or '.join(expected)}[/]\n")
    if missed:
        _fail(f"{missed} demo search(es) missed their known answer")


DEMO_QUERIES = [
    ("when did Lisbon reopen", ("speech.ogg", "harbour_report.mp4"),
     lambda h: h.layer == "transcript" and abs(h.t_start - 4.5) <= 1.0),
    ("pelican", ("harbour_report.mp4",), lambda h: h.layer == "scenes" and h.t_start >= 9.5),
    ("invoice for turbine maintenance", ("scanned_invoice.pdf",), lambda h: h.page == 2),
    ("board meeting in Osaka", ("board_minutes.pdf",), lambda h: h.page == 2),
]
"""(query, objects that may come first, what must hold of the first hit): the sentence about Lisbon is
spoken at 4.5 s both in the speech clip and in the video's soundtrack."""


def run() -> None:
    try:
        app()
    except MediasiftError as error:
        _fail(str(error))
