"""Poison among good objects, in batch runs on the real pipeline: every object is counted at the end. The
corrupt ones are dead-lettered on their first attempt with the reason; every good one is indexed exactly
once, however its batch went."""

import dagster as dg
import polars as pl

from mediasift.inbox import State
from mediasift.store import RowStores
from mediasift.store.s3 import ObjectStore
from tests.helpers import CORRUPT_MEDIA, pdf_bytes, pipeline_resources, run, tick, wait_for_events

GOOD = 50
BATCH = 20


def test_poison_objects_among_50_good_ones_lose_nothing_and_index_nothing_twice(stack, bucket, stack_inbox,
                                                                                tmp_path):
    client = ObjectStore.from_settings(stack.settings).client
    good = {f"good/{i:02d}.pdf": pdf_bytes(f"Inspection report {i} for turbine {i * 7}.") for i in range(GOOD)}
    whole = pdf_bytes("Half of this document is missing. " * 40)
    poison = {key: body if body is not None else whole[: len(whole) // 2] for key, body in CORRUPT_MEDIA.items()}
    uploads = list(good.items())
    for i, item in enumerate(poison.items()):
        uploads.insert(7 + i * BATCH, item)
    for key, body in uploads:
        client.put_object(Bucket=bucket, Key=key, Body=body)
    events = wait_for_events(stack_inbox, bucket, len(uploads), timeout=60)
    resources = pipeline_resources(stack.settings, bucket, tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    requests = tick(instance, resources, str(min(e.seq for e in events) - 1), batch=BATCH).run_requests
    assert len(requests) == 3, "54 versions in batches of 20"
    outcomes = [run(instance, resources, request, raise_on_error=False) for request in requests]
    assert sum(not o.success for o in outcomes) == 3, "each batch held a poison object and says so"

    records = {r.key: r for r in stack_inbox.versions(sorted({e.version_hash for e in events})).values()}
    assert len(records) == GOOD + len(poison), "every upload is in the inbox once"
    assert {k: (r.state, r.in_dlq, r.attempts) for k, r in records.items() if k in poison} == dict.fromkeys(
        poison, (State.FAILED, True, 1)), "corrupt bytes are dead-lettered at once"
    assert all(key in records[key].last_error for key in poison)
    assert {k: r.state for k, r in records.items() if k in good} == dict.fromkeys(good, State.DONE)

    stores = RowStores.at(tmp_path / "derived", str(tmp_path / "lance"))
    per_version = dict(stores.tables.scan("pages").group_by("key").agg(pl.len()).collect().iter_rows())
    assert per_version == dict.fromkeys(good, 1), "one page row per good object, none twice, none for poison"
    assert stores.index.count("pages") == GOOD
    assert len(stack_inbox.dead_letters(bucket)) == len(poison)
