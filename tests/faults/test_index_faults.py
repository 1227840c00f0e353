"""The index write failing in the middle of a batch: the pages table's write raises the error a read-only
directory gives (the tests run as root, which ignores permission bits, so the error is raised at the write
call of the real Lance index; every other write and read is real) after the other layers took the batch's
rows. Every version of the batch fails cleanly on each of its attempts (no row of it in any Lance table or
feature table), goes to the dead-letter queue with the reason after the last one, and is indexed when it is
re-driven once writes work again."""

import errno
import os

import dagster as dg

from mediasift.inbox import State
from mediasift.local.samples import write_text_pdf
from mediasift.store import RowStores
from mediasift.store.lance import LanceIndex
from mediasift.store.s3 import ObjectStore
from tests.helpers import pipeline_resources, rows_of, run, tick, wait_for_events


def request_cursor(inbox, hashes: set[str]) -> str:
    """The cursor just before the re-drive's events."""
    return str(max(e.seq for e in inbox.events_after(0, 100_000) if e.version_hash not in hashes
                   or e.source != "redrive"))


def test_a_failed_index_write_fails_the_batch_cleanly_and_the_retry_indexes_it(stack, bucket, stack_inbox,
                                                                                 tmp_path, monkeypatch):
    client = ObjectStore.from_settings(stack.settings).client

    def put(key: str, text: str) -> None:
        path = tmp_path / "upload.pdf"
        write_text_pdf(path, {1: text})
        client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())

    resources = pipeline_resources(stack.settings, bucket, tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    put("first.pdf", "The first report names Osaka.")
    [first] = wait_for_events(stack_inbox, bucket, 1)
    sensed = tick(instance, resources, str(first.seq - 1))
    assert all(run(instance, resources, r).success for r in sensed.run_requests)

    writes = LanceIndex.replace_versions

    def read_only_pages(self, layer, version_hashes, tables):
        if layer == "pages" and tables:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp_path / "lance" / "pages.lance"))
        return writes(self, layer, version_hashes, tables)

    monkeypatch.setattr(LanceIndex, "replace_versions", read_only_pages)
    for i in range(3):
        put(f"batch/{i}.pdf", f"Batch report {i} on the harbour works in Lisbon.")
    events = [e for e in wait_for_events(stack_inbox, bucket, 4) if e.key.startswith("batch/")]
    hashes = {e.version_hash for e in events}
    [request] = tick(instance, resources, sensed.cursor, batch=3).run_requests
    failed = run(instance, resources, request, raise_on_error=False)
    assert not failed.success
    stores = RowStores.at(tmp_path / "derived", str(tmp_path / "lance"))
    records = stack_inbox.versions(sorted(hashes))
    assert {h: (r.state, r.in_dlq, r.attempts) for h, r in records.items()} == dict.fromkeys(
        hashes, (State.FAILED, True, 3)), "Dagster retried the run's step in-process; the last attempt dead-letters"
    assert all(r.last_error.startswith("index write failed: OSError: [Errno 30]") for r in records.values())
    assert set(rows_of(stores, hashes).values()) == {0}, rows_of(stores, hashes)
    assert stores.index.count("pages") == 1, "first.pdf is still indexed"

    monkeypatch.setattr(LanceIndex, "replace_versions", writes)
    assert {r.version_hash for r in stack_inbox.redrive(sorted(hashes))} == hashes
    again = tick(instance, resources, request_cursor(stack_inbox, hashes), batch=3).run_requests
    assert again and all(run(instance, resources, r).success for r in again)
    assert {h: r.state for h, r in stack_inbox.versions(sorted(hashes)).items()} == dict.fromkeys(hashes, State.DONE)
    indexed = rows_of(stores, hashes)
    assert indexed["lance:pages"] == indexed["parquet:pages"] == 3 and indexed["parquet:objects"] == 3, indexed
