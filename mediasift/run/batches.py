"""Batch partitions (DESIGN §3, scale note): past tens of thousands of objects a Dagster partition is a range
of inbox sequence numbers, not one object version, so a 10M-object bucket has thousands of partitions. The
range is the record: a run, a retry or a backfill of a batch partition does exactly the versions of the
events in it, each as its last event there says (created, or deleted). Per-version state stays in the inbox.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain

from mediasift.inbox import FINAL_STATES, Inbox, InboxEvent, State, VersionRecord
from mediasift.intake.events import EventKind

BATCH_KEY = re.compile(r"seq-(\d{12})-(\d{12})")


def batch_key(first_seq: int, last_seq: int) -> str:
    """Zero-padded, so the keys sort as their ranges do and say what they cover."""
    return f"seq-{first_seq:012d}-{last_seq:012d}"


def batch_range(key: str) -> tuple[int, int]:
    match = BATCH_KEY.fullmatch(key)
    if match is None or int(match[1]) > int(match[2]):
        raise ValueError(f"{key!r} is not a batch partition key (seq-FIRST-LAST, 12 digits each, FIRST <= LAST)")
    return int(match[1]), int(match[2])


def batch_events(inbox: Inbox, key: str) -> list[InboxEvent]:
    first, last = batch_range(key)
    return [e for e in inbox.events_after(first - 1, last - first + 1) if e.seq <= last]


@dataclass
class BatchWork:
    """The versions a run of batch partitions does, grouped by what their last event in the batches says."""

    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def by_kind(self) -> list[tuple[EventKind, list[str]]]:
        return [(kind, hashes) for kind, hashes in ((EventKind.DELETED, self.deleted),
                                                    (EventKind.CREATED, self.created)) if hashes]

    @property
    def versions(self) -> list[str]:
        return [*self.deleted, *self.created]

    def only(self, keep: set[str]) -> BatchWork:
        return BatchWork([h for h in self.created if h in keep], [h for h in self.deleted if h in keep])


def batch_work(inbox: Inbox, keys: list[str]) -> BatchWork:
    """A version created and deleted within the batches is deleted; deleted then uploaded again, created."""
    last: dict[str, EventKind] = {}
    for key in keys:
        for event in batch_events(inbox, key):
            last[event.version_hash] = event.kind
    work = BatchWork()
    for version_hash, kind in last.items():
        (work.deleted if kind is EventKind.DELETED else work.created).append(version_hash)
    return work


def batches_of(events: list[InboxEvent], size: int) -> list[tuple[str, list[InboxEvent]]]:
    """Consecutive events cut into batch partitions of at most `size` events each."""
    chunks = [events[i:i + size] for i in range(0, len(events), size)]
    return [(batch_key(chunk[0].seq, chunk[-1].seq), chunk) for chunk in chunks]


def removed_for_good(records: dict[str, VersionRecord], hashes: list[str], cutoff: float) -> bool:
    """Every one of these versions is gone (deleted or superseded) since before `cutoff`: nothing a partition of
    them could still be run for. One the inbox does not know is not judged gone."""
    return all((record := records.get(h)) is not None and record.state in FINAL_STATES and record.updated_at < cutoff
               for h in hashes)


def expired_batches(inbox: Inbox, batch_keys: Iterable[str], removed: list[VersionRecord], cutoff: float
                    ) -> list[str]:
    """The batches that hold an event of one of the `removed` versions and whose every version is gone for
    good: the partitions a retention pass may drop. Keys that are not batch ranges are left alone."""
    ranges = sorted((batch_range(key), key) for key in batch_keys if BATCH_KEY.fullmatch(key))
    starts = [first for (first, _), _ in ranges]
    candidates: set[str] = set()
    for seq in chain.from_iterable(inbox.event_seqs([r.version_hash for r in removed]).values()):
        i = bisect_right(starts, seq) - 1
        if i >= 0 and seq <= ranges[i][0][1]:
            candidates.add(ranges[i][1])
    expired = []
    for key in sorted(candidates):
        hashes = list({e.version_hash for e in batch_events(inbox, key)})
        if removed_for_good(inbox.versions(hashes), hashes, cutoff):
            expired.append(key)
    return expired


def pending_only(inbox: Inbox, work: BatchWork) -> BatchWork:
    """What a re-drive of a failed batch run may do: the versions it never reached. A version another run
    finished must not be extracted again."""
    records = inbox.versions(work.versions)
    return work.only({h for h, record in records.items() if record.state is State.PENDING})
