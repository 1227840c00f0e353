"""Time from `put_object` to inbox, run creation, run launch, run start and materialization, one small
object at a time, with the real Dagster daemon and the default sensor interval; and the spacing of the inbox
sensor's ticks meanwhile (the daemon checks sensors every 5 s: a spacing near 10 s means it skips every other
check).

Between the stages: the sensor's wait for its tick (inbox → run created), the queued run coordinator's
dequeue (→ launched), the run worker process starting, importing Dagster and loading the code location
(→ started), and the run's own work on the object (→ materialized). The stack's warm run workers (runs
forked from a forkserver that imported the code location once, dagster_project/code_server.py) are measured
beside Dagster's default, a fresh interpreter spawned per run, on the same machine in the same run.

    python bench/latency.py [--samples N] [--no-baseline] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path

import dagster as dg
from dagster._daemon.sensor import MIN_INTERVAL_LOOP_TIME
from rich.console import Console
from rich.table import Table

from mediasift.config import Settings
from mediasift.identity import version_hash
from mediasift.inbox import Inbox
from mediasift.local.stack import DagsterMode, Stack
from mediasift.store.s3 import ObjectStore

SOURCE = dg.AssetKey(["mediasift", "source_object"])
STAGES = ("inbox", "run created", "run launched", "run started", "materialized")


def _poll(check, timeout: float = 180.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while (value := check()) is None:
        if time.monotonic() > deadline:
            raise TimeoutError("object did not get through the pipeline in time")
        time.sleep(interval)
    return value


def _one(stack: Stack, instance: dg.DagsterInstance, inbox: Inbox, n: int) -> dict[str, float]:
    bucket, key = stack.settings.bucket, f"latency/{n}.txt"
    client = ObjectStore.from_settings(stack.settings).client
    put_at = time.time()
    etag = client.put_object(Bucket=bucket, Key=key, Body=f"sample {n}".encode())["ETag"].strip('"')
    partition = version_hash(bucket, key, etag)

    def received():
        return next((e for e in inbox.events_after(0, 100_000) if e.version_hash == partition), None)

    def run_record():
        records = instance.get_run_records(dg.RunsFilter(tags={"dagster/partition": partition}), limit=1)
        return records[0] if records and records[0].start_time else None

    def materialized():
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=SOURCE, asset_partitions=[partition]), limit=1)
        return result.records[0].timestamp if result.records else None

    received_at = _poll(received) and time.time()
    done_at = _poll(materialized)
    record = _poll(run_record)
    (launched,) = instance.all_logs(record.dagster_run.run_id, of_type=dg.DagsterEventType.RUN_STARTING)
    return {
        "inbox": received_at - put_at,
        "run created": record.create_timestamp.timestamp() - put_at,
        "run launched": launched.timestamp - put_at,
        "run started": record.start_time - put_at,
        "materialized": done_at - put_at,
    }


@dataclass
class Measurement:
    latencies: list[dict[str, float]]
    """Per object, seconds from `put_object` to each of STAGES."""
    sensor_tick_spacings: list[float]
    """Seconds between consecutive inbox sensor ticks, over the stack's life."""


def measure_pipeline(samples: int, warm: bool = True) -> Measurement:
    """Objects put at random phases of the daemon's sensor loop, so two measurements' sensor waits compare."""
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home))
        stack = Stack(settings, DagsterMode.DAEMON)
        stack.warm_run_workers = warm
        with stack:
            instance = dg.DagsterInstance.from_config(str(stack.dagster_home))
            inbox = Inbox(stack.settings.inbox_url)
            results = []
            for n in range(samples):
                results.append(_one(stack, instance, inbox, n))
                time.sleep(random.uniform(1, 1 + MIN_INTERVAL_LOOP_TIME))
            return Measurement(results, _sensor_tick_spacings(instance))


def measure(samples: int) -> list[dict[str, float]]:
    """The latencies alone (what `bench/receiver.py` reports)."""
    return measure_pipeline(samples).latencies


def _sensor_tick_spacings(instance: dg.DagsterInstance) -> list[float]:
    """Read the way `tests/e2e/test_daemon.py` reads them: the inbox sensor's ticks from the instance."""
    (sensor,) = [s for s in instance.all_instigator_state() if s.name == "inbox_sensor"]
    ticks = sorted(t.timestamp for t in instance.get_ticks(sensor.instigator_origin_id, sensor.selector_id))
    return [b - a for a, b in pairwise(ticks)]


def report(results: list[dict[str, float]], interval: int, console: Console | None = None,
           sensor_tick_spacings: list[float] | None = None, baseline: list[dict[str, float]] | None = None) -> None:
    """Medians and maxima per stage; with `baseline` (spawned run processes) its medians beside, and the ratio."""
    columns = ["median s", "max s", *(["spawned runs: median s", "ratio"] if baseline else [])]
    table = Table("from put_object to", *columns, title=f"pipeline latency, {len(results)} objects, "
                  f"sensor interval {interval} s, daemon loop {MIN_INTERVAL_LOOP_TIME} s, warm run workers")
    for stage in STAGES:
        values = [r[stage] for r in results]
        row = [f"{statistics.median(values):.2f}", f"{max(values):.2f}"]
        if baseline:
            spawned = statistics.median(r[stage] for r in baseline)
            row += [f"{spawned:.2f}", f"{statistics.median(values) / spawned:.2f}"]
        table.add_row(stage, *row)
    if sensor_tick_spacings:
        table.rows[-1].end_section = True
        table.add_row(f"sensor tick to next tick (×{len(sensor_tick_spacings)})",
                      f"{statistics.median(sensor_tick_spacings):.2f}", f"{max(sensor_tick_spacings):.2f}")
    (console or Console()).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--no-baseline", action="store_true", help="skip the spawned-run baseline")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    baseline = None if args.no_baseline else measure_pipeline(args.samples, warm=False)
    measured = measure_pipeline(args.samples)
    if args.json:
        print(json.dumps({"warm": asdict(measured), "spawned": baseline and asdict(baseline)}, indent=2))
    else:
        report(measured.latencies, Settings().sensor_interval_s, Console(), measured.sensor_tick_spacings,
               baseline and baseline.latencies)


if __name__ == "__main__":
    main()
