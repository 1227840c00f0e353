"""Bursts and races at the door, on the running receiver over HTTP and the real inbox: 2,000 notifications
with 30% repeats in shuffled order are stored exactly once each; two reconcile sweeps at once never both
run, and together they enqueue each missed object once."""

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from mediasift.config import Settings
from mediasift.errors import LockHeld
from mediasift.inbox import Inbox
from mediasift.intake.reconcile import sweep
from mediasift.local.stack import DagsterMode, Stack
from mediasift.store.s3 import ObjectStore
from tests.helpers import events_for

UNIQUE = 1_400
REPEATS = 600
MISSED = 40


def tigris_event(bucket: str, i: int) -> dict:
    return {"events": [{"eventVersion": "1", "eventSource": "tigris", "eventName": "OBJECT_CREATED_PUT",
                        "eventTime": f"2026-12-01T12:{i // 60 % 60:02d}:{i % 60:02d}.000Z", "bucket": bucket,
                        "object": {"key": f"burst/{i:04d} ü.bin", "size": 100 + i, "eTag": f"{i:032x}"}}]}


def test_2000_notifications_with_30_percent_repeats_in_shuffled_order_are_stored_once(stack, bucket, stack_inbox,
                                                                                       webhook):
    bodies = [tigris_event(bucket, i) for i in range(UNIQUE)]
    sends = bodies + random.Random(7).choices(bodies, k=REPEATS)
    random.Random(11).shuffle(sends)
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda body: webhook("tigris", body), sends))
    assert {a.status_code for a in answers} == {200}
    counts = [a.json() for a in answers]
    assert sum(c["accepted"] for c in counts) == UNIQUE
    assert sum(c["duplicates"] for c in counts) == REPEATS
    stored = events_for(stack_inbox, bucket)
    assert len(stored) == UNIQUE
    assert sorted(e.key for e in stored) == sorted(b["events"][0]["object"]["key"] for b in bodies)
    assert len({e.version_hash for e in stored}) == UNIQUE


class GatedStore(ObjectStore):
    """The real store, whose listing waits for the test to open a gate: a sweep that holds the lock while
    another one starts, every time."""

    def __init__(self, client, listing: threading.Event, gate: threading.Event):
        super().__init__(client)
        self.listing, self.gate = listing, gate

    def list_objects(self, bucket: str):
        self.listing.set()
        assert self.gate.wait(60), "the test never opened the gate"
        yield from super().list_objects(bucket)


def test_two_sweeps_started_together_one_runs_the_other_skips(tmp_path):
    with Stack(Settings(home=tmp_path), DagsterMode.NONE) as own:
        store, inbox, bucket = ObjectStore.from_settings(own.settings), Inbox(own.settings.inbox_url), \
            own.settings.bucket
        own.receiver.stop()
        for i in range(MISSED):
            store.client.put_object(Bucket=bucket, Key=f"missed/{i}.txt", Body=f"m{i}".encode())
        listing, gate = threading.Event(), threading.Event()
        first: dict = {}
        holder = threading.Thread(target=lambda: first.update(result=sweep(
            inbox, GatedStore(store.client, listing, gate), bucket)))
        holder.start()
        assert listing.wait(60)
        with pytest.raises(LockHeld):
            sweep(inbox, store, bucket)
        gate.set()
        holder.join(60)
        assert first["result"].created == MISSED
        assert sweep(inbox, store, bucket).created == 0, "a sweep after the first adds nothing"
        assert sorted(e.key for e in events_for(inbox, bucket)) == sorted(f"missed/{i}.txt" for i in range(MISSED))
