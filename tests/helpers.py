"""Small steps the integration tests share: wait for webhook events, tick the sensor, run a partition, count a
version's rows in the stores, check Ray's listeners."""

import re
import subprocess
import time
from functools import cache

import dagster as dg
import polars as pl

from assets.object_version import build_object_version
from dagster_project.definitions import retry_policy
from dagster_project.jobs import build_ingest_job
from dagster_project.partitions import ingest_partitions
from dagster_project.sensors import build_inbox_sensor
from mediasift.analysis.objects import OBJECTS
from mediasift.config import Settings
from mediasift.extraction.layers.rows import LAYERS
from mediasift.inbox import Inbox, InboxEvent
from mediasift.store import RowStores
from resources import build_resources


def events_for(inbox: Inbox, bucket: str) -> list[InboxEvent]:
    return [e for e in inbox.events_after(0, 100_000) if e.bucket == bucket]


def wait_for(check, timeout: float, what: str, interval: float = 0.5):
    """Poll `check` until it returns something true, and return that; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
    return value


def wait_for_events(inbox: Inbox, bucket: str, count: int, timeout: float = 15) -> list[InboxEvent]:
    deadline = time.monotonic() + timeout
    while len(found := events_for(inbox, bucket)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {count} events for {bucket}, got {len(found)}: {found}")
        time.sleep(0.05)
    return found


def assert_ray_listens_on_loopback_only() -> None:
    listeners = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout.splitlines()
    ray_lines = [line for line in listeners if re.search(r'"(raylet|gcs_server|ray::[^"]*)"', line)]
    assert ray_lines, "no Ray listener found"
    for line in ray_lines:
        local = line.split()[3]
        assert local.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:")), line


def rows_of(stores: RowStores, hashes: set[str]) -> dict[str, int]:
    """Rows of these versions in every Lance table and every feature table."""
    where = " OR ".join(f"version_hash = '{h}'" for h in sorted(hashes))
    found = {f"lance:{layer}": stores.index.count(layer, where) for layer in LAYERS}
    for table in (*LAYERS, OBJECTS):
        frame = stores.tables.scan(table)
        found[f"parquet:{table}"] = 0 if frame is None else frame.filter(
            pl.col("version_hash").is_in(sorted(hashes))).select(pl.len()).collect().item()
    return found


def pipeline_settings(settings: Settings, bucket: str, work_dir, **overrides) -> Settings:
    """The stack's settings for one test: its own bucket, feature tables and index."""
    return settings.model_copy(update={"bucket": bucket, "derived_dir": work_dir / "derived",
                                       "lance_uri": str(work_dir / "lance"), "sensor_batch_size": 500, **overrides})


def pipeline_resources(settings: Settings, bucket: str, work_dir, **overrides) -> dict:
    """The code location's resources for these settings. Their S3 secrets come from the environment, as in
    a deployment: the `stack` fixture sets them."""
    return build_resources(pipeline_settings(settings, bucket, work_dir, **overrides))


@cache
def object_version(max_attempts: int = 3, partition_mode: str = "version") -> dg.AssetsDefinition:
    return build_object_version(retry_policy(max_attempts), ingest_partitions(partition_mode))


def ingest_job():
    return build_ingest_job(object_version())


def tick(instance, resources, cursor: str | None, batch: int = 1) -> dg.SensorResult:
    """One sensor evaluation, its partitions added to the instance (what the daemon would do)."""
    settings = Settings(**{**resources["settings"].values, "run_batch_size": batch, "run_batch_max_wait_s": 0})
    sensor = build_inbox_sensor(ingest_job(), settings)
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        result = sensor(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def run(instance, resources, request: dg.RunRequest, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    """Execute a run request in-process: one partition, or a partition range (a batch run)."""
    settings = resources["settings"].values
    asset = object_version(settings["max_attempts"], settings.get("partition_mode", "version"))
    return dg.materialize([asset], partition_key=request.partition_key, tags=request.tags,
                          resources=resources, instance=instance, raise_on_error=raise_on_error)


def run_new_events(instance, resources, inbox: Inbox, cursor: str, raise_on_error: bool = True,
                   batch: int = 1) -> tuple[str, list]:
    """Tick once and run every requested partition; returns the new cursor and the results."""
    result = tick(instance, resources, cursor, batch)
    outcomes = [run(instance, resources, request, raise_on_error) for request in result.run_requests]
    return result.cursor or cursor, outcomes


class RecordingServer:
    """A real HTTP server on a free loopback port that records every POST (headers and JSON body) and
    answers them with the statuses queued in `answers` (200 once they run out)."""

    def __init__(self, answers: list[int] | None = None):
        import http.server
        import json
        import threading

        self.requests: list[dict] = []
        self.answers = list(answers or [])
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                owner.requests.append({"headers": dict(self.headers), "body": json.loads(body)})
                self.send_response(owner.answers.pop(0) if owner.answers else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/alerts"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def __enter__(self) -> "RecordingServer":
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def pdf_bytes(text: str) -> bytes:
    """A one-page PDF with a text layer."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=14)
    pdf.multi_cell(0, 10, text)
    return bytes(pdf.output())


CORRUPT_MEDIA = {
    "bad/tiny.mp4": b"\x00\x00\x00\x14ftypisom\x00\x00\x02\x00isom",
    "bad/cut.pdf": None,
    "bad/header.jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x13\x37" * 300,
}
"""Bytes no extractor can read: an ftyp box and nothing else, a PDF cut in half (None: the caller cuts one
of its own), a JPEG header over noise."""


def png(image) -> bytes:
    """A PIL image encoded as PNG."""
    import io

    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def jpeg(image, quality: int) -> bytes:
    """A PIL image encoded as JPEG at `quality`."""
    import io

    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()
