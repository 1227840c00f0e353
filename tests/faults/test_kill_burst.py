"""The receiver and the Dagster daemon SIGKILLed in the middle of a burst of 500 uploads, then restarted:
every object is counted at the end (indexed, or dead-lettered with its reason) and nothing is processed
twice.

Everything is real and a process of its own: SeaweedFS with its filer webhook, the receiver
(`mediasift receiver`), a long-lived Dagster code server and `dagster-daemon run`, in batch mode. The
burst comes in three waves, each started by a condition, never by the clock: the first while everything
runs; the second while the receiver and the daemon are dead (SeaweedFS drops the deliveries it cannot
make); the third after both are back. The reconcile sweep (`mediasift reconcile`) then enqueues what the
webhook lost.

The kill lands while every run slot holds a STARTED run, so the daemon is not in the middle of handing a
run to the code server. Killed there, it leaves the run STARTING until run monitoring fails it (after
`start_timeout_seconds`) and the stranded-versions sensor runs its versions again; that recovery is tested
on its own (tests/unit/test_stranded_versions.py), since waiting out the timeout here would prove nothing
more about the burst."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import httpx
import polars as pl
import pytest

from assets.source import SOURCE
from dagster_project.jobs import INGEST_JOB
from mediasift.config import Settings
from mediasift.identity import version_hash
from mediasift.inbox import Inbox, State
from mediasift.local.processes import LOOPBACK, start_group, stop_group, wait_until
from mediasift.local.stack import DagsterMode, Stack
from mediasift.metrics import MULTIPROC_ENV
from mediasift.store import RowStores
from mediasift.store.s3 import ObjectStore
from tests.helpers import pdf_bytes, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

BEFORE, DURING, AFTER = 200, 150, 150
"""Uploads before the kill, while the receiver and the daemon are dead, and after their restart."""
OBJECTS = BEFORE + DURING + AFTER
BATCH = 100
BIN = Path(sys.executable).parent
ONLY_THE_TESTS_SWEEP = "0 0 1 1 *"
"""The scheduled sweep (every 10 minutes by default) would race the test's own, which counts what it repairs."""
RUN_IN_FLIGHT = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


@dataclass
class Pipeline:
    """The stack with its code server and daemon (each the leader of its process group), and the receiver as
    a process of its own on the port SeaweedFS's webhook was started with."""

    stack: Stack
    receiver: subprocess.Popen | None = None

    @property
    def daemon(self) -> subprocess.Popen:
        return self.stack.dagster

    @property
    def env(self) -> dict[str, str]:
        return self.stack.child_env()

    def start_receiver(self) -> None:
        """`mediasift receiver`, its token by environment. It keeps its own metrics, as the stack's
        in-process receiver does (the shared metrics directory is the Dagster processes')."""
        env = {k: v for k, v in self.env.items() if k != MULTIPROC_ENV}
        env["MEDIASIFT_WEBHOOK_TOKEN"] = self.stack.settings.webhook_token.get_secret_value()
        port = self.stack.receiver.port
        self.receiver = start_group([str(BIN / "mediasift"), "receiver", "--host", LOOPBACK, "--port", str(port)],
                                    cwd=self.stack.home, log_path=self.stack.home / "receiver.log", env=env)
        wait_until(lambda: httpx.get(f"http://{LOOPBACK}:{port}/healthz", timeout=2).status_code == 200,
                   timeout=120, what="the receiver", process=self.receiver)

    def restart_daemon(self) -> None:
        """The same command the stack ran, against the same code server, environment and log."""
        killed = self.stack.dagster
        self.stack.dagster = start_group(killed.args, cwd=self.stack.dagster_home,
                                         log_path=self.stack.dagster_home / "dagster.log", env=self.env)

    def kill(self) -> list[int]:
        """SIGKILL the receiver's and the daemon's whole process groups, no chance to clean up; their exit
        statuses."""
        for process in (self.receiver, self.daemon):
            os.killpg(process.pid, signal.SIGKILL)
        return [process.wait(timeout=30) for process in (self.receiver, self.daemon)]


@pytest.fixture
def pipeline(tmp_path) -> Iterator[Pipeline]:
    """The stack as it runs for the daemon, in batch mode; its in-process receiver is stopped and the
    receiver process takes its port. Every process group is stopped at the end."""
    settings = Settings(home=tmp_path / "home", ray="off", run_batch_size=BATCH, max_attempts=3,
                        reconcile_cron=ONLY_THE_TESTS_SWEEP)
    with Stack(settings, DagsterMode.DAEMON) as stack:
        stack.receiver.stop()
        running = Pipeline(stack)
        try:
            running.start_receiver()
            yield running
        finally:
            stop_group(running.receiver)


def materializations_by_partition(instance: dg.DagsterInstance) -> Counter[str]:
    counts: Counter[str] = Counter()
    cursor = None
    while True:
        page = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=SOURCE), limit=1000, cursor=cursor)
        counts.update(r.partition_key for r in page.records)
        if not page.has_more:
            return counts
        cursor = page.cursor


def test_receiver_and_daemon_killed_mid_burst_lose_nothing_and_process_nothing_twice(pipeline):
    stack = pipeline.stack
    settings, bucket = stack.settings, stack.settings.bucket
    client = ObjectStore.from_settings(settings).client
    inbox = Inbox(settings.inbox_url)
    instance = dg.DagsterInstance.from_config(str(stack.dagster_home))
    keys = [f"burst/{i:03d}.pdf" for i in range(OBJECTS)]
    bodies = {key: pdf_bytes(f"Inspection {i}: turbine {i * 7} in sector {i % 13} passed on day {i}.")
              for i, key in enumerate(keys)}
    etags: dict[str, str] = {}
    killed, restarted = threading.Event(), threading.Event()
    upload_errors: list[BaseException] = []

    def upload(wave: list[str]) -> None:
        for key in wave:
            etags[key] = client.put_object(Bucket=bucket, Key=key, Body=bodies[key])["ETag"].strip('"')

    def uploader() -> None:
        """One burst of 500, in the three waves the test's conditions let through."""
        try:
            upload(keys[:BEFORE])
            if killed.wait(600):
                upload(keys[BEFORE:BEFORE + DURING])
            if restarted.wait(600):
                upload(keys[BEFORE + DURING:])
        except BaseException as error:  # reported by the test thread
            upload_errors.append(error)

    def hashes() -> dict[str, str]:
        return {key: version_hash(bucket, key, etag) for key, etag in list(etags.items())}

    def states() -> Counter[str]:
        records = inbox.versions(list(hashes().values()))
        return Counter("dlq" if r.in_dlq else r.state.value for r in records.values())

    def runs(*statuses: dg.DagsterRunStatus) -> int:
        return instance.get_runs_count(dg.RunsFilter(job_name=INGEST_JOB, statuses=list(statuses)))

    def runs_in_flight() -> int:
        return runs(*RUN_IN_FLIGHT)

    def mid_burst() -> bool:
        """The first wave uploaded and mostly in the inbox, its work unfinished, every run slot extracting."""
        return (len(etags) == BEFORE and len(inbox.versions(list(hashes().values()))) >= 150
                and states()[State.DONE.value] < BEFORE
                and runs(dg.DagsterRunStatus.STARTED) == settings.concurrent_runs
                and runs(dg.DagsterRunStatus.STARTING) == 0)

    # given the whole pipeline running and a burst under way
    burst = threading.Thread(target=uploader, name="uploader")
    burst.start()
    try:
        wait_for(mid_burst, 900, lambda: f"the first wave in the inbox and every run slot extracting: "
                                         f"{len(etags)} uploaded, {states()}, {runs_in_flight()} runs in flight",
                 interval=0.2)

        # when the receiver and the daemon are SIGKILLed mid-burst
        exits = pipeline.kill()
        at_kill = {"uploaded": len(etags), "states": states(), "runs_in_flight": runs_in_flight(),
                   "events": len(inbox.events_after(0, 100_000)), "exits": exits}
        in_flight_at_kill = [r.run_id for r in instance.get_runs(dg.RunsFilter(
            job_name=INGEST_JOB, statuses=RUN_IN_FLIGHT))]
        print(f"at the kill: {at_kill}")
        killed.set()
        wait_for(lambda: len(etags) == BEFORE + DURING or upload_errors, 600, "the uploads during the outage")

        # and restarted, with the rest of the burst arriving through the webhook again
        pipeline.start_receiver()
        pipeline.restart_daemon()
        restarted.set()
        burst.join(600)
        assert not burst.is_alive() and not upload_errors, upload_errors
        after = keys[BEFORE + DURING:]
        wait_for(lambda: len(inbox.versions([hashes()[k] for k in after])) == AFTER, 300,
                 "the restarted receiver to store the last wave's events")
        missed = [k for k in keys if hashes()[k] not in inbox.versions(list(hashes().values()))]
        swept = subprocess.run([str(BIN / "mediasift"), "reconcile", "--json"], env=pipeline.env,
                               capture_output=True, text=True, timeout=300, cwd=stack.home)
        assert swept.returncode == 0, swept.stderr + swept.stdout
        sweep = json.loads(swept.stdout)
        print(f"webhook deliveries lost: {len(missed)}; reconcile: {sweep}")

        # then every object ends counted, each exactly once
        wanted = hashes()
        wait_for(lambda: all(r.state is State.DONE or r.in_dlq for r in inbox.versions(list(wanted.values())).values())
                 and len(inbox.versions(list(wanted.values()))) == OBJECTS
                 and runs(dg.DagsterRunStatus.QUEUED, *RUN_IN_FLIGHT) == 0, 2400,
                 lambda: f"every version settled and every run ended: {states()}, {runs_in_flight()} runs in "
                         f"flight, {runs(dg.DagsterRunStatus.QUEUED)} queued")
    finally:
        killed.set()
        restarted.set()
        burst.join(60)

    assert at_kill["uploaded"] < OBJECTS and at_kill["states"][State.DONE.value] < BEFORE, \
        f"the kill came in the middle of the burst: {at_kill}"
    assert exits == [-signal.SIGKILL] * 2 and len(in_flight_at_kill) == settings.concurrent_runs, at_kill
    assert sweep["missed_created"] == len(missed), "the sweep enqueued exactly what the webhook lost"
    assert pipeline.receiver.poll() is None and pipeline.daemon.poll() is None

    records = {r.key: r for r in inbox.versions(list(wanted.values())).values()}
    assert sorted(records) == keys, "every upload is in the inbox, once"
    assert not inbox.dead_letters(bucket), "no poison here: nothing is dead-lettered"
    assert {k: r.state for k, r in records.items()} == dict.fromkeys(keys, State.DONE)
    assert {k: r.attempts for k, r in records.items()} == dict.fromkeys(keys, 1), "no version was tried twice"

    stores = RowStores.at(settings.derived_path, settings.lance_location)
    pages = dict(stores.tables.scan("pages").group_by("key").agg(pl.len()).collect().iter_rows())
    assert pages == dict.fromkeys(keys, 1), "one page row per object in the feature table, none twice"
    indexed = Counter(stores.index.table("pages").to_arrow().column("version_hash").to_pylist())
    assert indexed == Counter(wanted.values()), "exactly one searchable page per object version"
    assert stores.index.count("pages") == OBJECTS

    materialized = materializations_by_partition(instance)
    assert {h: materialized[h] for h in wanted.values()} == dict.fromkeys(wanted.values(), 1), \
        "each version's source materialized by exactly one run"
    ended = Counter(r.status for r in instance.get_runs(dg.RunsFilter(job_name=INGEST_JOB)))
    caught = {r.run_id: r.status for r in instance.get_runs(dg.RunsFilter(run_ids=in_flight_at_kill))}
    print(f"ingest runs: {dict(ended)}; the runs the kill caught: {caught}")
    assert set(ended) == {dg.DagsterRunStatus.SUCCESS}, "no run left hanging or failed by the kill"
