"""Extraction on a real local Ray: same rows as inline, survives a killed worker, models load once per actor,
and every Ray listener is on 127.0.0.1."""

import os
import signal
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from mediasift.extraction.compute import SPOOL_PREFIX, InlineCompute, RayCompute
from mediasift.extraction.layers.rows import LAYERS
from mediasift.extraction.models.whisper import cpu_threads
from mediasift.identity import ObjectVersion
from mediasift.inbox import Inbox, State
from mediasift.intake.events import EventKind, NotificationEvent, Source
from mediasift.local.samples import write_samples
from mediasift.run import versions as run_path
from mediasift.run.versions import Attempt, run_versions
from mediasift.store import RowStores
from mediasift.store.expectations import RowExpectations
from mediasift.store.s3 import ObjectStore
from tests.helpers import assert_ray_listens_on_loopback_only

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def jobs(stack, tmp_path_factory) -> list[ObjectVersion]:
    """The samples in a bucket of the real SeaweedFS: workers read their objects themselves."""
    folder = tmp_path_factory.mktemp("media")
    write_samples(folder)
    storage = ObjectStore.from_settings(stack.settings)
    bucket = f"t-compute-{uuid.uuid4().hex[:8]}"
    storage.ensure_bucket(bucket)
    keys = {f"samples/{path.name}": path for path in sorted(folder.iterdir())}
    return [ObjectVersion(bucket, key, storage.upload(path, bucket, key)) for key, path in keys.items()]


@pytest.fixture(scope="module")
def ray_compute(stack):
    compute = RayCompute(stack.settings, address=None, actors=2, batch_size=2)
    yield compute
    compute.close()
    assert not compute.ray_dir.exists(), "the private Ray's temp dir outlived it"


def comparable(extraction) -> dict:
    return {layer: [(r.kind, r.text, r.t_start, r.t_end, r.page, r.label) for r in rows]
            for layer, rows in extraction.rows.items()}


def test_inline_and_ray_produce_identical_rows(stack, jobs, ray_compute, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    inline = InlineCompute(stack.settings).extract(jobs)
    left = [p.name for p in tmp_path.iterdir() if not p.name.startswith("torchinductor_")]  # torch's own cache
    assert left == [], "extraction left files behind in the temp dir"
    on_ray = ray_compute.extract(jobs)
    assert len(inline) == len(on_ray) == len(jobs)
    for version, a, b in zip(jobs, inline, on_ray, strict=True):
        assert a.version == b.version == version
        assert a.error is None and b.error is None, version.key
        assert a.fetched == b.fetched and len(a.fetched.sha256) == 64
        assert comparable(a) == comparable(b), version.key
        for layer in LAYERS:
            for row_a, row_b in zip(a.rows[layer], b.rows[layer], strict=True):
                if row_a.vector is not None:
                    np.testing.assert_allclose(row_a.vector, row_b.vector, atol=1e-4)


def test_each_model_is_loaded_once_per_actor(jobs, ray_compute):
    ray_compute.extract(jobs * 2)
    for counts in ray_compute.load_counts():
        assert counts and all(n == 1 for n in counts.values()), counts


def test_whisper_on_a_ray_worker_uses_the_cpus_ray_gave_it_not_every_core(ray_compute, monkeypatch):
    import ray

    assert ray.get([actor.__ray_call__.remote(lambda _: cpu_threads()) for actor in ray_compute.actors]) == [1, 1]
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert cpu_threads() == os.cpu_count()


def test_ray_listens_on_loopback_only(ray_compute):
    assert_ray_listens_on_loopback_only()


def notified(versions: list[ObjectVersion], tmp_path) -> tuple[Inbox, RowStores, list[str]]:
    """A fresh inbox that has the create events of `versions`, and empty stores."""
    inbox = Inbox(f"sqlite:///{tmp_path / 'inbox.db'}")
    stores = RowStores.at(tmp_path / "derived", str(tmp_path / "lance"))
    events = [NotificationEvent(Source.TIGRIS, EventKind.CREATED, v.bucket, v.key, v.etag) for v in versions]
    inbox.append(events)
    return inbox, stores, [event.version_hash for event in events]


def run_all(stack, inbox, stores, compute, hashes):
    return run_versions(inbox, ObjectStore.from_settings(stack.settings), stores, compute, hashes, EventKind.CREATED,
                        Attempt("test-run", 1, 3, 60), RowExpectations.from_settings(stack.settings))


def test_a_version_overwritten_before_the_worker_reads_it_is_superseded(stack, bucket, tmp_path):
    storage = ObjectStore.from_settings(stack.settings)
    storage.client.put_object(Bucket=bucket, Key="note.txt", Body=b"first")
    first = storage.head(bucket, "note.txt").etag
    inline = InlineCompute(stack.settings)

    class OverwrittenAfterTheCheck:
        def as_completed(self, versions):
            storage.client.put_object(Bucket=bucket, Key="note.txt", Body=b"second")
            yield from inline.as_completed(versions)

    inbox, stores, (h,) = notified([ObjectVersion(bucket, "note.txt", first)], tmp_path)
    (outcome,) = run_all(stack, inbox, stores, OverwrittenAfterTheCheck(), [h])
    assert outcome.state is State.SUPERSEDED and "no longer has etag" in outcome.reason
    assert inbox.version(h).state is State.SUPERSEDED
    assert stores.index.table("transcript") is None or stores.index.count("transcript", f"version_hash = '{h}'") == 0


def test_first_objects_are_indexed_while_the_rest_are_still_extracted(stack, jobs, tmp_path, ray_compute,
                                                                      monkeypatch):
    monkeypatch.setattr(run_path, "INDEX_FLUSH", 1)
    inbox, stores, hashes = notified(jobs, tmp_path)
    handed_back = []

    class Counting:
        def as_completed(self, versions):
            for group in ray_compute.as_completed(versions):
                handed_back.append(len(group))
                yield group

    outcomes = run_all(stack, inbox, stores, Counting(), hashes)
    first = next(outcomes)
    groups_when_first = len(handed_back)
    rest = list(outcomes)
    assert len(handed_back) == -(-len(hashes) // ray_compute.batch_size) > groups_when_first == 1
    assert inbox.version(first.version.version_hash).state is State.DONE
    assert sum(first.indexed_rows.values()) > 0
    for layer, count in first.indexed_rows.items():
        assert stores.index.count(layer, f"version_hash = '{first.version.version_hash}'") == count
    assert sorted(o.version.version_hash for o in [first, *rest]) == sorted(hashes)


def test_worker_killed_mid_batch_is_retried_without_duplicate_rows(stack, jobs, tmp_path):
    inbox, stores, hashes = notified(jobs, tmp_path)
    compute = RayCompute(stack.settings, address=None, actors=1, batch_size=len(hashes))
    (before,) = compute.pids()
    held: list[str] = []
    killer = threading.Thread(target=_kill_when_busy, args=(before, held))
    killer.start()
    try:
        outcomes = list(run_all(stack, inbox, stores, compute, hashes))
        killer.join()
        (after,) = compute.pids()
    finally:
        compute.close()
    assert held, "the worker was not killed while it held an object"
    assert after != before, "no new worker took over the batch"
    assert list(Path(tempfile.gettempdir()).glob(f"{SPOOL_PREFIX}{before}-*")) == [], "the killed worker's spool"
    assert [o.state for o in outcomes] == [State.DONE] * len(hashes)
    recorded = inbox.versions(hashes)
    assert all(len(recorded[h].sha256) == 64 and recorded[h].content_type for h in hashes)
    for layer in LAYERS:
        table = stores.index.table(layer)
        if table is None:
            continue
        rows = table.to_arrow().select(["version_hash", "row_no"]).to_pylist()
        assert len(rows) == len({(r["version_hash"], r["row_no"]) for r in rows}), layer
        for outcome in outcomes:
            h = outcome.version.version_hash
            assert stores.index.count(layer, f"version_hash = '{h}'") == outcome.indexed_rows[layer]


def _kill_when_busy(pid: int, held: list[str], timeout: float = 300.0) -> None:
    """Kill the worker like an OOM killer would, at a moment it holds an object it has not finished: its
    spool exists from the read until the object's layers are extracted. `held` gets that spool's name."""
    deadline = time.monotonic() + timeout
    while not (spools := list(Path(tempfile.gettempdir()).glob(f"{SPOOL_PREFIX}{pid}-*"))):
        if time.monotonic() > deadline:
            return
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    held.extend(spool.name for spool in spools)
