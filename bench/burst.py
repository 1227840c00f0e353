"""A burst of uploads through the whole pipeline with batched runs, counted object by object.

    python bench/burst.py [--objects 5000] [--batch-size 100] [--actors 2] [--uploaders 8] [--json]

One embedded stack (SeaweedFS webhook → receiver → inbox → Dagster daemon and code server → batched runs
→ a local Ray head's extraction actors). Small images and one-page PDFs (distinct bytes each) are uploaded
from `--uploaders` threads as fast as the store takes them; the benchmark then waits until every version
is settled. It prints the time to drain, objects/min, the peak inbox depth (versions waiting for a run)
and the dead-letter queue, then counts: lost (uploaded, never done nor dead-lettered: must be 0) and
processed twice (a version with more than one `source_object` materialization, or in a batch partition
materialized more than once: must be 0). The
orchestration CPU per object is the CPU of the Dagster run processes, daemon and code server (from
/proc, this benchmark's own process tree only) divided by the objects: the work Dagster adds around
extraction, which the actors do. A baseline burst runs first beside it with Dagster's stock SQLite storage and
its stock run processes, spawned afresh per run (`--baseline-objects`, 0 to skip); the ratio of the two is the
one to read, as both ran on this machine. `--partition-mode batch` runs the measured burst with a partition
per batch (`MEDIASIFT_PARTITION_MODE`), the baseline always with a partition per version.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
from PIL import ImageDraw
from rich.console import Console
from rich.table import Table
from throughput import CpuByRole

from assets.source import SOURCE
from mediasift.cli.uploads import wait_settled
from mediasift.config import Settings
from mediasift.identity import version_hash
from mediasift.inbox import Inbox, State
from mediasift.local.samples import scene_image, write_text_pdf
from mediasift.local.stack import DagsterMode, Stack
from mediasift.run.batches import batch_work
from mediasift.store.s3 import ObjectStore

ORCHESTRATION = ("Dagster run processes", "Dagster daemon + code server")
BASELINE_CPU_PER_OBJECT = 0.135
"""Orchestration CPU-s per object the issue measured (0.12-0.15, bench/throughput.py); the benchmark also runs
a baseline beside it on Dagster's stock SQLite storage."""


def make_objects(folder: Path, count: int) -> list[Path]:
    """Three images to two one-page PDFs, each distinct: the cheapest content every layer path still sees."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        if i % 5 < 3:
            path = folder / f"{i:05d}.png"
            image = scene_image((i * 37 % 255, 90, 200 - i % 100), (20, i * 13 % 255, 60), sun=i % 2 == 0)
            ImageDraw.Draw(image).text((20, 20), f"frame {i}", fill=(255, 255, 255))
            image.resize((160, 107)).save(path)
        else:
            path = folder / f"{i:05d}.pdf"
            write_text_pdf(path, {1: f"Report {i}: the turbine in sector {i % 17} was inspected on day {i}."})
        paths.append(path)
    return paths


class DepthSampler:
    """The inbox's backlog (versions waiting for a run), sampled while the burst drains."""

    def __init__(self, inbox: Inbox, every: float = 0.5):
        self.inbox, self.every, self.peak = inbox, every, 0
        self.stopped = threading.Event()

    def __enter__(self) -> DepthSampler:
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()
        return self

    def _poll(self) -> None:
        while not self.stopped.wait(self.every):
            self.peak = max(self.peak, self.inbox.depth())

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join()


class Progress:
    """A line a minute on stderr while the burst drains: settled so far and the last minute's rate, which
    shows whether the pipeline slows down as the bucket grows."""

    def __init__(self, total: int, started: float, every: float = 60.0):
        self.total, self.started, self.every = total, started, every
        self.last_t, self.last_n = started, 0
        self.console = Console(stderr=True)

    def __call__(self, settled: int) -> None:
        now = time.perf_counter()
        if now - self.last_t >= self.every:
            rate = (settled - self.last_n) / (now - self.last_t) * 60
            self.console.print(f"{now - self.started:7.0f} s  settled {settled}/{self.total}  "
                               f"last minute {rate:.0f} objects/min")
            self.last_t, self.last_n = now, settled


def source_materializations(dagster_home: Path) -> tuple[Counter[str], Counter[str]]:
    """`source_object` materializations per partition, and per run."""
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    by_partition: Counter[str] = Counter()
    by_run: Counter[str] = Counter()
    cursor = None
    while True:
        page = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=SOURCE), limit=1000, cursor=cursor)
        by_partition.update(r.partition_key for r in page.records)
        by_run.update(r.run_id for r in page.records)
        if not page.has_more:
            return by_partition, by_run
        cursor = page.cursor


def burst(objects: list[Path], home: Path, batch_size: int, actors: int, uploaders: int, stock: bool,
          partition_mode: str = "version") -> dict:
    settings = Settings(home=home, ray="local", run_batch_size=batch_size, run_batch_max_wait_s=5.0,
                        ray_actors=actors, partition_mode=partition_mode)
    stack = Stack(settings, DagsterMode.DAEMON)
    stack.tuned_sqlite_storage = stack.warm_run_workers = not stock
    with stack:
        storage = ObjectStore.from_settings(stack.settings)
        bucket = stack.settings.bucket
        inbox = Inbox(stack.settings.inbox_url)
        started = time.perf_counter()
        with CpuByRole() as cpu, DepthSampler(inbox) as depth, ThreadPoolExecutor(uploaders) as pool:
            etags = pool.map(lambda p: storage.upload(p, bucket, f"burst/{p.name}"), objects)
            uploaded = {f"burst/{p.name}": etag for p, etag in zip(objects, etags, strict=True)}
            uploads_s = time.perf_counter() - started
            states = wait_settled(inbox, bucket, uploaded, timeout=4 * 3600, poll=1.0,
                                  on_progress=Progress(len(objects), started))
            drain_s = time.perf_counter() - started
        hashes = {version_hash(bucket, key, etag) for key, etag in uploaded.items()}
        records = inbox.versions(sorted(hashes))
        materialized, runs = source_materializations(stack.dagster_home)
        if partition_mode == "batch":
            materialized = Counter({h: count for key, count in materialized.items()
                                    for h in batch_work(inbox, [key]).versions})
    cpu_s = cpu.totals()
    orchestration = sum(cpu_s.get(role, 0.0) for role in ORCHESTRATION)
    return {
        "mode": "Dagster's stock storage and run processes" if stock else
                f"mediasift (tuned storage, warm runs, a partition per {partition_mode})",
        "objects": len(objects),
        "uploads_s": round(uploads_s, 1),
        "drain_s": round(drain_s, 1),
        "objects_per_min": round(len(objects) / drain_s * 60),
        "peak_inbox_depth": depth.peak,
        "done": sum(1 for s in states.values() if s is State.DONE),
        "dlq": sum(1 for r in records.values() if r.in_dlq),
        "lost": sum(1 for h in hashes if h not in records or (records[h].state is not State.DONE
                                                             and not records[h].in_dlq)),
        "processed_twice": sum(1 for h in hashes if materialized.get(h, 0) > 1),
        "retried": sum(1 for r in records.values() if r.attempts > 1),
        "runs": len(runs),
        "objects_per_run": round(len(objects) / max(len(runs), 1), 1),
        "cpu_s": cpu_s,
        "orchestration_cpu_per_object": round(orchestration / len(objects), 4),
    }


def report(results: list[dict], batch_size: int, actors: int, console: Console) -> None:
    table = Table("measure", *(r["mode"] for r in results),
                  title=f"Uploads (3 images : 2 PDFs) through the pipeline, batched runs of ≤{batch_size}, "
                        f"{actors} Ray actors, {os.cpu_count()} cores")
    for label, key in (("objects", "objects"), ("uploads finished (s)", "uploads_s"),
                       ("time to drain (s)", "drain_s"), ("objects/min", "objects_per_min"),
                       ("peak inbox depth", "peak_inbox_depth"), ("done", "done"), ("dead-letter queue", "dlq"),
                       ("lost (must be 0)", "lost"), ("processed twice (must be 0)", "processed_twice"),
                       ("retried", "retried"), ("ingest runs", "runs"), ("objects per run", "objects_per_run")):
        table.add_row(label, *(str(r[key]) for r in results))
    console.print(table)
    cpu = Table("CPU-s per object, by process role", *(r["mode"] for r in results))
    for role in dict.fromkeys(role for r in results for role in r["cpu_s"]):
        cpu.add_row(role, *(f"{r['cpu_s'].get(role, 0.0) / r['objects']:.4f}" for r in results))
    cpu.add_row("orchestration (run processes + daemon + code server)",
                *(f"{r['orchestration_cpu_per_object']:.4f}" for r in results))
    console.print(cpu)
    ours = results[-1]["orchestration_cpu_per_object"]
    for baseline, label in ((BASELINE_CPU_PER_OBJECT, "the issue's 0.12-0.15 (0.135)"),
                            *((r["orchestration_cpu_per_object"], "the stock run beside it") for r in results[:-1])):
        console.print(f"orchestration CPU per object {ours:.4f} s against {label}: ratio {ours / baseline:.2f} "
                      f"(target ≤ 0.5: {'met' if ours <= baseline / 2 else 'NOT met'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--actors", type=int, default=Settings().ray_actors, help="Ray extraction actors")
    parser.add_argument("--uploaders", type=int, default=8, help="concurrent upload threads")
    parser.add_argument("--baseline-objects", type=int, default=1000,
                        help="objects for the baseline burst on Dagster's stock SQLite storage (0: skip)")
    parser.add_argument("--partition-mode", choices=("version", "batch"), default="version",
                        help="a Dagster partition per object version, or per batch, for the measured burst")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        objects = make_objects(Path(tmp) / "objects", max(args.objects, args.baseline_objects))
        results = [burst(objects[: args.baseline_objects], Path(tmp) / "stock", args.batch_size, args.actors,
                         args.uploaders, stock=True)] if args.baseline_objects else []
        results.append(burst(objects[: args.objects], Path(tmp) / "mediasift", args.batch_size, args.actors,
                             args.uploaders, stock=False, partition_mode=args.partition_mode))
        if args.json:
            print(json.dumps(results, indent=2))
        else:
            report(results, args.batch_size, args.actors, Console())


if __name__ == "__main__":
    main()
