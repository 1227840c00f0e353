"""A burst of mixed small objects through the whole pipeline: per-object runs vs batched runs vs pure
extraction on warm Ray actors.

    python bench/throughput.py [--objects 200] [--batch-size 100] [--sensor-interval 1] [--actors 2]
                               [--skip-per-object] [--partition-mode version|batch] [--json]

Each pipeline mode runs on its own embedded stack (SeaweedFS webhook → receiver → inbox → Dagster daemon
→ runs) with a local Ray head, from the first upload to the last object `done`. Pure extraction is the
same jobs handed straight to the same warm actors (each worker still reads its object from S3). The
orchestration overhead of a mode is its end-to-end time divided by the pure extraction time. It also
prints where the machine's CPU went during pure extraction and during the batched burst, by process role
(read from /proc; on a small machine the orchestration competes with the actors for the same cores), and
a timeline of the burst (when the first run was created and started, when the first and last objects
were done). `--actors` below the core count leaves the orchestration cores the actors do not use, as a
cluster or a GPU node would.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from PIL import ImageDraw
from rich.console import Console
from rich.table import Table

from mediasift.cli.uploads import wait_settled
from mediasift.config import Settings
from mediasift.extraction.compute import RayCompute
from mediasift.identity import ObjectVersion, version_hash
from mediasift.inbox import Inbox, State
from mediasift.local.samples import SPEECH, scene_image, write_text_pdf, write_video
from mediasift.local.stack import DagsterMode, Stack
from mediasift.store.s3 import ObjectStore

TARGET = 1.15
MIX = {"image": 0.4, "pdf": 0.3, "audio": 0.2, "video": 0.1}


def make_objects(folder: Path, count: int) -> list[Path]:
    """`count` small files in the MIX proportions; every file distinct (its own ETag)."""
    folder.mkdir(parents=True, exist_ok=True)
    video = folder / "base.mp4"
    write_video(video)
    speech = SPEECH.read_bytes()
    paths = []
    for i in range(count):
        kind = _kind_for(i, count)
        path = folder / f"{i:04d}.{ {'image': 'png', 'pdf': 'pdf', 'audio': 'ogg', 'video': 'mp4'}[kind] }"
        if kind == "image":
            image = scene_image((i * 37 % 255, 90, 200 - i % 100), (20, i * 13 % 255, 60), sun=i % 2 == 0)
            ImageDraw.Draw(image).text((20, 20), f"frame {i}", fill=(255, 255, 255))
            image.resize((320, 213)).save(path)
        elif kind == "pdf":
            write_text_pdf(path, {1: f"Report {i}: the turbine in sector {i % 17} was inspected on day {i}."})
        elif kind == "audio":
            path.write_bytes(speech + i.to_bytes(4, "big"))
        else:
            path.write_bytes(video.read_bytes() + i.to_bytes(4, "big"))
        paths.append(path)
    video.unlink()
    return paths


def _kind_for(i: int, count: int) -> str:
    edge = 0.0
    for kind, share in MIX.items():
        edge += share
        if i < edge * count:
            return kind
    return "video"


class CpuByRole:
    """CPU seconds used by each kind of process while the block runs, sampled from /proc. Runs forked from the
    stack's warm forkserver carry its command line, so they and it count as run processes; a Ray worker is one
    before it names itself `ray::…`."""

    ROLES = (("ray::", "Ray workers (extraction actors)"), ("default_worker.py", "Ray workers (extraction actors)"),
             ("multiprocessing.spawn", "Dagster run processes"),
             ("multiprocessing.forkserver", "Dagster run processes"), ("dagster", "Dagster daemon + code server"),
             ("weed", "SeaweedFS"), ("ray", "Ray head"),
             ("bench/", "receiver + this benchmark"))

    def __init__(self) -> None:
        self.seen: dict[int, tuple[str, float]] = {}
        self.roles: dict[int, str] = {}
        self.ours: dict[int, bool] = {}
        self.start: dict[int, float] = {}
        self.stopped = threading.Event()

    def _sample(self) -> None:
        """Only this benchmark's own processes and their descendants (the stack's, the runs', the actors'):
        a machine shared with other work must not count that work. A process's role is read from its
        command line once (a spawned process may still be blank)."""
        for pid in map(int, filter(str.isdigit, os.listdir("/proc"))):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                if not self._ours(pid, int(stat[1])):
                    continue
                role = self.roles.get(pid) or self._role(pid)
            except OSError:
                continue
            self.seen[pid] = (role, (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK"))

    def _ours(self, pid: int, ppid: int) -> bool:
        if pid not in self.ours:
            self.ours[pid] = pid == os.getpid() or ppid == os.getpid() or (ppid > 1 and self._ours(
                ppid, int(Path(f"/proc/{ppid}/stat").read_text().rsplit(")", 1)[1].split()[1])))
        return self.ours[pid]

    def _role(self, pid: int) -> str:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        role = next((r for k, r in self.ROLES if k in command), "other")
        if command:
            self.roles[pid] = role
        return role

    def __enter__(self) -> CpuByRole:
        self._sample()
        self.start = {pid: seconds for pid, (_, seconds) in self.seen.items()}
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()
        return self

    def _poll(self) -> None:
        """Often enough to see a short-lived run process before it exits."""
        while not self.stopped.wait(0.3):
            self._sample()

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join()
        self._sample()

    def totals(self) -> dict[str, float]:
        used: Counter[str] = Counter()
        for pid, (role, seconds) in self.seen.items():
            used[role] += seconds - self.start.get(pid, 0.0)
        return {role: round(seconds, 1) for role, seconds in used.most_common() if seconds >= 0.5}


def pipeline(objects: list[Path], batch_size: int, home: Path, pure: bool, sensor_interval: int, actors: int,
             partition_mode: str = "version") -> dict:
    settings = Settings(home=home, ray="local", run_batch_size=batch_size, run_batch_max_wait_s=5.0,
                        sensor_interval_s=sensor_interval, ray_actors=actors, partition_mode=partition_mode)
    with Stack(settings, DagsterMode.DAEMON) as stack:
        storage = ObjectStore.from_settings(stack.settings)
        bucket = stack.settings.bucket
        result: dict = {}
        if pure:
            result["pure"] = pure_extraction(stack, storage, objects)
        runs_before = {r.dagster_run.run_id for r in _run_records(stack)}
        inbox = Inbox(stack.settings.inbox_url)
        started, wall_start = time.perf_counter(), time.time()
        with CpuByRole() as cpu:
            uploaded = {f"burst/{p.name}": storage.upload(p, bucket, f"burst/{p.name}") for p in objects}
            uploads_done = time.time() - wall_start
            states = wait_settled(inbox, bucket, uploaded, timeout=3600, poll=0.25)
        result["end_to_end_s"] = time.perf_counter() - started
        result["cpu_s"] = cpu.totals()
        result["done"] = sum(1 for s in states.values() if s is State.DONE)
        runs = [r for r in _run_records(stack) if r.dagster_run.run_id not in runs_before]
        result["runs"] = len(runs)
        done_at = sorted(r.updated_at - wall_start for r in inbox.versions(
            [version_hash(bucket, key, etag) for key, etag in uploaded.items()]).values())
        result["timeline_s"] = {
            "uploads done": uploads_done,
            "first run created": min(r.create_timestamp.timestamp() for r in runs) - wall_start,
            "first run started": min(r.start_time or float("inf") for r in runs) - wall_start,
            "first object done": done_at[0],
            "last object done": done_at[-1],
        }
        return result


def pure_extraction(stack: Stack, storage: ObjectStore, objects: list[Path]) -> dict:
    """Upload the objects under another prefix and let their runs finish (which warms the actors), then
    time the same jobs handed straight to the actors."""
    compute = RayCompute(stack.settings, address=stack.ray_head.address,
                         actors=stack.settings.ray_actors, batch_size=stack.settings.ray_batch_size)
    jobs = []
    for path in objects:
        key = f"pure/{path.name}"
        etag = storage.upload(path, stack.settings.bucket, key)
        jobs.append(ObjectVersion(stack.settings.bucket, key, etag))
    wait_settled(Inbox(stack.settings.inbox_url), stack.settings.bucket, {v.key: v.etag for v in jobs},
                 timeout=3600)
    _wait_for_idle_runs(stack)
    try:
        compute.extract(jobs[: stack.settings.ray_actors * 4])
        started = time.perf_counter()
        with CpuByRole() as cpu:
            results = compute.extract(jobs)
        elapsed = time.perf_counter() - started
    finally:
        compute.close()
    failed = [r.error for r in results if r.error]
    if failed:
        raise RuntimeError(f"pure extraction failed for {len(failed)} objects: {failed[:3]}")
    return {"seconds": elapsed, "cpu_s": cpu.totals()}


def _wait_for_idle_runs(stack: Stack, timeout: float = 600) -> None:
    """Objects are done before their run has logged its last events; let those runs end first."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(stack.dagster_home))
    busy = dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING,
                                   dg.DagsterRunStatus.STARTED])
    deadline = time.monotonic() + timeout
    while instance.get_runs_count(busy) and time.monotonic() < deadline:
        time.sleep(0.5)


def _run_records(stack: Stack) -> list:
    import dagster as dg

    from dagster_project.jobs import INGEST_JOB

    instance = dg.DagsterInstance.from_config(str(stack.dagster_home))
    return list(instance.get_run_records(dg.RunsFilter(job_name=INGEST_JOB)))


def report(rows: list[dict], count: int, actors: int, console: Console) -> None:
    pure = next(r["seconds"] for r in rows if r["mode"] == "pure extraction (warm actors)")
    table = Table("mode", "objects", "runs", "seconds", "objects/min", "overhead (÷ pure)",
                  title=f"{count} mixed small objects (40% images, 30% PDFs, 20% audio, 10% video), "
                        f"{os.cpu_count()} cores, {actors} Ray actors")
    for row in rows:
        table.add_row(row["mode"], str(row["objects"]), str(row.get("runs", "-")), f"{row['seconds']:.1f}",
                      f"{row['objects'] / row['seconds'] * 60:.0f}", f"{row['seconds'] / pure:.2f}")
    console.print(table)
    batched = next(r for r in rows if r["mode"].startswith("batched"))
    ratio = batched["seconds"] / pure
    console.print(f"target for batched runs: overhead ≤ {TARGET}: {'met' if ratio <= TARGET else 'NOT met'} "
                  f"({ratio:.2f})")
    pure_cpu = next(r["cpu_s"] for r in rows if r["mode"] == "pure extraction (warm actors)")
    cpu = Table("process role", "pure extraction", "batched burst", "batched − pure",
                title=f"CPU seconds by process role ({os.cpu_count()} cores: the batched burst had "
                      f"{batched['seconds'] * (os.cpu_count() or 1):.0f} CPU-seconds)")
    for role in dict.fromkeys([*batched["cpu_s"], *pure_cpu]):
        here, there = pure_cpu.get(role, 0.0), batched["cpu_s"].get(role, 0.0)
        cpu.add_row(role, f"{here:.1f}", f"{there:.1f}", f"{there - here:+.1f}")
    cpu.add_row("all", f"{sum(pure_cpu.values()):.1f}", f"{sum(batched['cpu_s'].values()):.1f}",
                f"{sum(batched['cpu_s'].values()) - sum(pure_cpu.values()):+.1f}")
    console.print(cpu)
    timeline = Table("batched burst", "seconds after the first upload", title="Timeline")
    for event, seconds in batched["timeline_s"].items():
        timeline.add_row(event, f"{seconds:.1f}")
    console.print(timeline)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--sensor-interval", type=int, default=Settings().sensor_interval_s)
    parser.add_argument("--actors", type=int, default=Settings().ray_actors, help="Ray extraction actors")
    parser.add_argument("--skip-per-object", action="store_true", help="skip the slow run-per-object mode")
    parser.add_argument("--partition-mode", choices=("version", "batch"), default="version",
                        help="the batched runs' Dagster partitions: one per object version, or one per batch")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        objects = make_objects(Path(tmp) / "objects", args.objects)
        batched = pipeline(objects, args.batch_size, Path(tmp) / "batched", pure=True,
                           sensor_interval=args.sensor_interval, actors=args.actors, partition_mode=args.partition_mode)
        rows = [
            {"mode": "pure extraction (warm actors)", "objects": len(objects), "seconds": batched["pure"]["seconds"],
             "cpu_s": batched["pure"]["cpu_s"]},
            {"mode": f"batched runs (≤{args.batch_size} per run, a partition per {args.partition_mode})",
             "objects": batched["done"],
             "runs": batched["runs"], "seconds": batched["end_to_end_s"], "cpu_s": batched["cpu_s"],
             "timeline_s": batched["timeline_s"]},
        ]
        if not args.skip_per_object:
            single = pipeline(objects, 1, Path(tmp) / "single", pure=False, sensor_interval=args.sensor_interval,
                              actors=args.actors)
            rows.append({"mode": "a run per object", "objects": single["done"], "runs": single["runs"],
                         "seconds": single["end_to_end_s"]})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        report(rows, args.objects, args.actors, Console())


if __name__ == "__main__":
    main()
