"""A store that throttles and drops connections for a while: a real proxy process in front of SeaweedFS
answers 503 SlowDown and resets connections for its first requests. Every object still ends indexed, each
exactly once, and the proxy's own count shows the faults really happened."""

import os
import signal
import subprocess
import sys

import dagster as dg
import httpx
import polars as pl
import pytest

from mediasift.inbox import State
from mediasift.local.samples import write_text_pdf
from mediasift.store import RowStores
from mediasift.store.s3 import ObjectStore
from tests.helpers import pipeline_resources, run, tick, wait_for_events

OBJECTS = 6


@pytest.fixture
def flaky_store(stack):
    """The proxy's URL; the process (its own group) is killed at the end."""
    proxy = subprocess.Popen([sys.executable, "-m", "tests.faults.fault_proxy", "--upstream",
                              stack.settings.s3_endpoint_url, "--faulty", "60"],
                             stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        line = proxy.stdout.readline()
        assert line.startswith("listening "), line
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        os.killpg(proxy.pid, signal.SIGKILL)
        proxy.wait()


def test_every_object_is_indexed_once_through_slowdowns_and_resets(stack, bucket, stack_inbox, flaky_store, tmp_path):
    client = ObjectStore.from_settings(stack.settings).client
    for i in range(OBJECTS):
        path = tmp_path / f"{i}.pdf"
        write_text_pdf(path, {1: f"Report number {i} on the turbine maintenance schedule."})
        client.put_object(Bucket=bucket, Key=f"reports/{i}.pdf", Body=path.read_bytes())
    events = wait_for_events(stack_inbox, bucket, OBJECTS)
    resources = pipeline_resources(stack.settings, bucket, tmp_path, s3_endpoint_url=flaky_store)
    instance = dg.DagsterInstance.ephemeral()
    sensed = tick(instance, resources, str(min(e.seq for e in events) - 1))
    assert all(run(instance, resources, request).success for request in sensed.run_requests)

    faults = httpx.get(f"{flaky_store}/__faults").json()
    print(f"proxy: {faults}")
    assert faults["slowdown"] >= 3 and faults["reset"] >= 2, faults
    hashes = {e.version_hash for e in events}
    assert {h: r.state for h, r in stack_inbox.versions(sorted(hashes)).items()} == dict.fromkeys(hashes, State.DONE)
    stores = RowStores.at(tmp_path / "derived", str(tmp_path / "lance"))
    parquet = stores.tables.scan("pages").group_by("version_hash").agg(pl.len()).collect()
    assert dict(parquet.iter_rows()) == dict.fromkeys(hashes, 1), "one page row per version, none twice"
    assert stores.index.count("pages") == OBJECTS
