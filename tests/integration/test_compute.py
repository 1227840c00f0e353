"""Extraction on a real local Ray: same rows as inline, survives a killed worker, models load once per actor,
and every Ray listener is on 127.0.0.1."""

import os
import re
import shutil
import signal
import subprocess
import threading
import time

import numpy as np
import pytest

from mediasift import indexing
from mediasift.compute import ExtractJob, InlineCompute, RayCompute, WorkerConfig
from mediasift.config import Settings
from mediasift.events import EventKind, NotificationEvent, Source
from mediasift.identity import ObjectVersion
from mediasift.inbox import Inbox, State
from mediasift.indexing import Stores, index_versions, stores_from
from mediasift.layers.rows import LAYERS
from mediasift.samples import write_samples
from mediasift.storage import sniff_content_type

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    write_samples(folder)
    return sorted(folder.iterdir())


@pytest.fixture(scope="module")
def ray_compute():
    compute = RayCompute(WorkerConfig(Settings()), address=None, actors=2, batch_size=2)
    yield compute
    compute.close()


def jobs_for(paths) -> list[ExtractJob]:
    return [ExtractJob(ObjectVersion("media", f"samples/{p.name}", f"etag-{p.name}"),
                       sniff_content_type(p.read_bytes()[:8192]), str(p)) for p in paths]


def comparable(extraction) -> dict:
    return {layer: [(r.kind, r.text, r.t_start, r.t_end, r.page, r.label) for r in rows]
            for layer, rows in extraction.rows.items()}


def test_inline_and_ray_produce_identical_rows(samples, ray_compute):
    jobs = jobs_for(samples)
    inline = InlineCompute(WorkerConfig(Settings())).extract(jobs)
    on_ray = ray_compute.extract(jobs)
    assert len(inline) == len(on_ray) == len(jobs)
    for job, a, b in zip(jobs, inline, on_ray, strict=True):
        assert a.job == b.job == job
        assert a.error is None and b.error is None, job.version.key
        assert comparable(a.extraction) == comparable(b.extraction), job.version.key
        for layer in LAYERS:
            for row_a, row_b in zip(a.extraction.rows[layer], b.extraction.rows[layer], strict=True):
                if row_a.vector is not None:
                    np.testing.assert_allclose(row_a.vector, row_b.vector, atol=1e-4)


def test_each_model_is_loaded_once_per_actor(samples, ray_compute):
    ray_compute.extract(jobs_for(samples) * 2)
    for counts in ray_compute.load_counts():
        assert counts and all(n == 1 for n in counts.values()), counts


def test_ray_listens_on_loopback_only(ray_compute):
    listeners = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout.splitlines()
    ray_lines = [line for line in listeners if re.search(r'"(raylet|gcs_server|ray::[^"]*)"', line)]
    assert ray_lines, "no Ray listener found"
    for line in ray_lines:
        local = line.split()[3]
        assert local.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:")), line


def read_by_source_step(samples, tmp_path) -> tuple[Inbox, Stores, list[str]]:
    """Inbox and stores as the source step leaves them: every sample recorded and spooled, none indexed."""
    inbox = Inbox(f"sqlite:///{tmp_path / 'inbox.db'}")
    stores = stores_from(tmp_path / "derived", str(tmp_path / "lance"), tmp_path / "spool")
    hashes = []
    for path in samples:
        event = NotificationEvent(Source.TIGRIS, EventKind.CREATED, "media", f"k/{path.name}", f"e-{path.name}")
        inbox.append([event])
        inbox.record_content(event.version_hash, content_type=sniff_content_type(path.read_bytes()[:8192]),
                             sha256="0" * 64, size=path.stat().st_size)
        shutil.copy(path, stores.spool_path(event.version_hash))
        hashes.append(event.version_hash)
    return inbox, stores, hashes


def test_first_objects_are_indexed_while_the_rest_are_still_extracted(samples, tmp_path, ray_compute,
                                                                      monkeypatch):
    monkeypatch.setattr(indexing, "INDEX_FLUSH", 1)
    inbox, stores, hashes = read_by_source_step(samples, tmp_path)
    handed_back = []

    class Counting:
        def as_completed(self, jobs):
            for group in ray_compute.as_completed(jobs):
                handed_back.append(len(group))
                yield group

    outcomes = indexing.index_versions(inbox, stores, Counting(), hashes, attempt=1, max_attempts=3)
    first = next(outcomes)
    groups_when_first = len(handed_back)
    rest = list(outcomes)
    assert len(handed_back) == -(-len(hashes) // ray_compute.batch_size) > groups_when_first == 1
    assert inbox.version(first.version.version_hash).state is State.DONE
    assert sum(first.indexed_rows.values()) > 0
    for layer, count in first.indexed_rows.items():
        assert stores.index.count(layer, f"version_hash = '{first.version.version_hash}'") == count
    assert sorted(o.version.version_hash for o in [first, *rest]) == sorted(hashes)


def test_worker_killed_mid_batch_is_retried_without_duplicate_rows(samples, tmp_path):
    inbox, stores, hashes = read_by_source_step(samples, tmp_path)
    compute = RayCompute(WorkerConfig(Settings()), address=None, actors=1, batch_size=len(hashes))
    (before,) = compute.pids()
    killer = threading.Thread(target=_kill_when_busy, args=(before,))
    killer.start()
    try:
        outcomes = list(index_versions(inbox, stores, compute, hashes, attempt=1, max_attempts=3))
        killer.join()
        (after,) = compute.pids()
    finally:
        compute.close()
    assert after != before, "the worker was not killed during the batch"
    assert [o.state for o in outcomes] == [State.DONE] * len(hashes)
    for layer in LAYERS:
        table = stores.index.table(layer)
        if table is None:
            continue
        rows = table.to_arrow().select(["version_hash", "row_no"]).to_pylist()
        assert len(rows) == len({(r["version_hash"], r["row_no"]) for r in rows}), layer
        for outcome in outcomes:
            h = outcome.version.version_hash
            assert stores.index.count(layer, f"version_hash = '{h}'") == outcome.indexed_rows[layer]


def _kill_when_busy(pid: int, delay: float = 3.0) -> None:
    """Let the worker load its models and start on the batch, then kill it like an OOM killer would."""
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)
