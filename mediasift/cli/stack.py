"""Running mediasift: the embedded stack (`up`), the demo on it, and a bare receiver for production."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from PIL import Image
from rich.table import Table

from mediasift.analysis import views
from mediasift.analysis.clusters import ClusterSettings
from mediasift.cli.app import (
    app,
    console,
    fail,
    load_settings,
)
from mediasift.cli.ingest import upload_files, wait_processed
from mediasift.cli.search import print_hits
from mediasift.cli.uploads import plan_uploads
from mediasift.extraction.layers.rows import LAYERS
from mediasift.extraction.models import models_for
from mediasift.inbox import Inbox, State
from mediasift.local.samples import PHOTO_SHOT_SECONDS, photo, photo_variants, write_samples
from mediasift.local.stack import DagsterMode, Stack
from mediasift.metrics import METRICS_DIR, MULTIPROC_ENV
from mediasift.query.lineage import object_analysis
from mediasift.query.search import Filters, Searcher
from mediasift.store.lance import LanceIndex
from mediasift.store.parquet import FeatureTables
from mediasift.store.s3 import ObjectStore


@app.command()
def up() -> None:
    """Start SeaweedFS (S3 + webhook), the receiver and the Dagster UI + daemon; Ctrl-C stops all."""
    with Stack(load_settings(), DagsterMode.DEV) as stack:
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


def _metrics_problem() -> str | None:
    """With prometheus-client's multiprocess directory set, the receiver's own counters would be written as
    files beside the runs' (a crash when the directory is missing), and its /metrics, which adds up the runs'
    files, would count them twice."""
    if os.environ.get(MULTIPROC_ENV):
        return (f"{MULTIPROC_ENV} is set: it is for the Dagster processes; the receiver keeps its own metrics "
                f"and reads the runs' from MEDIASIFT_HOME/{METRICS_DIR}. Unset it for the receiver")
    return None


@app.command()
def receiver(host: Annotated[str | None, typer.Option(help="Bind address (default MEDIASIFT_RECEIVER_HOST, "
                                                     "127.0.0.1).")] = None,
             port: Annotated[int | None, typer.Option(help="Port (default MEDIASIFT_RECEIVER_PORT).")] = None) -> None:
    """Serve only the webhook receiver (production: several behind a load balancer). Refuses to start without
    webhook credentials (MEDIASIFT_WEBHOOK_TOKEN, or Basic user and password)."""
    import uvicorn

    from mediasift.intake.auth import credential_problem
    from mediasift.intake.receiver import create_app

    settings = load_settings()
    problem = credential_problem(settings) or _metrics_problem()
    if problem:
        fail(f"the receiver will not start: {problem}")
    uvicorn.run(create_app(settings), host=host or settings.receiver_host, port=port or settings.receiver_port,
                access_log=False)


@app.command()
def demo(timeout: Annotated[float, typer.Option(help="Seconds to wait for indexing.")] = 900) -> None:
    """Start the stack, upload the sample media (video, speech, PDFs, images), wait until every object is
    indexed, run sample searches, print the hits, stop. Exits 1 if a search misses its known answer."""
    settings = load_settings()
    with Stack(settings, DagsterMode.DAEMON) as stack, tempfile.TemporaryDirectory() as tmp:
        console.print(f"stack up: S3 {stack.settings.s3_endpoint_url}, receiver {stack.receiver.url}")
        folder = Path(tmp) / "samples"
        write_samples(folder)
        uploaded = upload_files(ObjectStore.from_settings(stack.settings), plan_uploads([folder], "demo/"),
                           stack.settings.bucket)
        states = wait_processed(Inbox(stack.settings.inbox_url), stack.settings.bucket, uploaded, timeout)
        table = Table("key", "etag", "state", title="demo objects")
        for key, etag in uploaded.items():
            table.add_row(key, etag, str(states[key]))
        console.print(table)
        if any(s is not State.DONE for s in states.values()):
            fail(f"not every demo object was indexed; see {stack.dagster_home / 'dagster.log'}")
        searcher = Searcher(LanceIndex(stack.settings.lance_location), models_for(stack.settings))
        missed = 0
        for query, layers, expected, check in DEMO_QUERIES:
            hits = searcher.search(query, 3, Filters(layers))
            print_hits(query + (f"  (layers: {', '.join(layers)})" if layers != LAYERS else ""), hits)
            found = bool(hits) and hits[0].key.removeprefix("demo/") in expected and check(hits[0])
            missed += not found
            console.print(f"{'[green]✓' if found else '[red]✗'} expected first: {' or '.join(expected)}[/]\n")
        _demo_analysis(stack, Path(tmp), timeout)
    if missed:
        fail(f"{missed} demo search(es) missed their known answer")


def _demo_analysis(stack: Stack, tmp: Path, timeout: float) -> None:
    """The same indexed objects, three more access patterns: a duplicate group, a cluster, and an object
    flagged as it arrives against a reference (here the café photos, scored as the anomaly_scores asset
    scores every object: a demo's dozen unlike samples make a reference in which nothing stands out)."""
    derived = stack.settings.derived_path
    storage, inbox = ObjectStore.from_settings(stack.settings), Inbox(stack.settings.inbox_url)
    variants = tmp / "variants"
    variants.mkdir()
    for i, image in enumerate(photo_variants(photo("coffee"))):
        image.save(variants / f"espresso {i}.png")
    wait_processed(inbox, stack.settings.bucket, upload_files(storage, plan_uploads([variants], "demo/cafe/"),
                                                              stack.settings.bucket), timeout)
    objects = views.load_objects(derived)
    groups = views.duplicate_view(objects).groups
    if groups:
        group = max(groups, key=lambda g: len(g.members))
        console.print(f"[bold]duplicates[/bold] ({len(groups)} groups): {group.kind} group of "
                      f"{group.representative.key}: " + ", ".join(f"{m.ref.key} ({m.reason})"
                                                                  for m in group.members[1:]))
    clustering, _ = views.cluster_view(objects, "visual", settings=ClusterSettings(min_cluster_size=3))
    if clustering.clusters:
        biggest = max(clustering.clusters, key=lambda c: c.size)
        console.print(f"[bold]clusters[/bold] (visual, min size 3 for a demo this small): {len(clustering.clusters)}"
                      f"; {biggest.id}: {biggest.size} objects, keywords {', '.join(biggest.keywords[:4])}")
    cafe = objects.filter(objects["key"].str.starts_with("demo/cafe/"))
    views.write_reference(views.analysis_dir(derived), views.rescore_view(cafe, "visual"))
    odd = tmp / "odd"
    odd.mkdir()
    Image.fromarray(np.random.default_rng(7).integers(0, 256, (360, 480, 3), dtype=np.uint8)).save(odd / "static.png")
    uploaded = upload_files(storage, plan_uploads([odd], "demo/odd/"), stack.settings.bucket)
    wait_processed(inbox, stack.settings.bucket, uploaded, timeout)
    (version,) = inbox.versions_of(stack.settings.bucket, "demo/odd/static.png")
    verdict = object_analysis(FeatureTables(derived), version) or {}
    score, flagged = verdict.get("anomaly_score"), verdict.get("anomaly_flagged")
    shown = "no score" if score is None else f"scored {score:.2f}"
    console.print(f"[bold]anomalies[/bold] (reference: the {len(cafe)} café photos): demo/odd/static.png {shown} "
                  f"at arrival, {'flagged' if flagged else 'not flagged'}")


DEMO_QUERIES = [
    ("when did Lisbon reopen", LAYERS, ("speech.ogg", "harbour_report.mp4"),
     lambda h: h.layer == "transcript" and abs(h.t_start - 4.5) <= 1.0),
    ("pelican", LAYERS, ("harbour_report.mp4",), lambda h: h.layer == "scenes" and h.t_start >= 9.5),
    ("invoice for turbine maintenance", LAYERS, ("scanned_invoice.pdf",), lambda h: h.page == 2),
    ("board meeting in Osaka", LAYERS, ("board_minutes.pdf",), lambda h: h.page == 2),
    ("espresso", LAYERS, ("photo_shots.mp4",), lambda h: h.t_start >= PHOTO_SHOT_SECONDS - 0.5),
    ("espresso", ("visual",), ("photo_shots.mp4",),
     lambda h: h.layer == "visual" and h.t_start >= PHOTO_SHOT_SECONDS - 0.5),
]
"""(query, layers, objects that may come first, what must hold of the first hit): the sentence about Lisbon
is spoken at 4.5 s both in the speech clip and in the video's soundtrack; the espresso is the second shot
of the video made of two photos, and only the visual model knows it is one."""
