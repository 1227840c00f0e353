"""The inbox against a model of it: a hypothesis state machine appends notification events (creates, deletes with
and without an ETag or a versionId, with and without a sequencer, redeliveries, ETags of one key out of order,
deletes before creates, uploads again after deletes) and drives versions through claim, done, unsupported, failed
(dead-lettered on the last attempt), superseded, deleted, redrive and purge. After every step the real inbox
(SQLite, a fresh file per example) must agree with a small Python model of DESIGN §3 and §7, which decides from
the list of what was said about each version:

- a redelivery of one occurrence (same sequencer; for a delete without an ETag, same versionId or sequencer) is
  absorbed, whatever happened since;
- a delete without an ETag names the version with its versionId, or else the newest live version of its key (by
  first event);
- a create is absorbed when its version was created since the key's last delete without a versionId, or, naming
  a versionId, when that version was ever created or deleted; otherwise it is a new arrival: pending again, fresh
  attempts, out of the DLQ;
- a delete is absorbed when the last word on its version is a delete; the first word on a version, it leaves the
  version deleted (nothing live);
- of a key's finished versions the one that arrived last (its latest create) is current, the others superseded;
- the DLQ holds exactly the versions that failed on their last attempt, until redriven (back to pending, fresh
  attempts, a new event), purged (still failed), superseded or deleted;
- `counts()`, `depth()`, `dead_letters()`, `live_versions()` and the event log say the same as the model.

The example tests after the machine are the bugs it found (once pinned as strict xfails), and the order and repeats
of issue 12, item 2.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from mediasift.identity import version_hash
from mediasift.inbox import Inbox, State
from mediasift.intake.events import EventKind, NotificationEvent, Source
from tests.fuzz.test_parsers import FUZZ, examples

MAX_ATTEMPTS = 3
LEASE_SECONDS = 3_600.0
"""Longer than any example runs: leases here end only by finishing, never by expiring."""
BUCKETS = ["media", "other"]
KEYS = ["clip.mp4", "dir/ünï code.jpg", "../x", "k" * 300]
ETAGS = ["e1", "e2", '"E2"', "e3", ""]
"""`"E2"` is `e2` as a sender may quote it; "" is an event without an ETag (a delete the inbox resolves)."""
VERSION_IDS = [None, None, None, "v1", "v2"]
SEQUENCERS = [None, None, "0A", "0B"]
"""Few, so that hypothesis repeats them: one sequencer on two events of one version is one occurrence."""
SOURCES = [Source.TIGRIS, Source.SEAWEEDFS, Source.S3, Source.RECONCILE]
OWNERS = ["run-a", "run-b"]
LIVE_EXCLUDED = (State.SUPERSEDED, State.DELETED)
FINISHED = (State.DONE, State.UNSUPPORTED)

events = st.builds(NotificationEvent, source=st.sampled_from(SOURCES), kind=st.sampled_from(list(EventKind)),
                   bucket=st.sampled_from(BUCKETS), key=st.sampled_from(KEYS), etag=st.sampled_from(ETAGS),
                   version_id=st.sampled_from(VERSION_IDS), sequencer=st.sampled_from(SEQUENCERS))


@dataclass
class ModelVersion:
    bucket: str
    key: str
    etag: str
    version_id: str | None
    first_seq: int
    arrival: int
    """Position of its latest create (its first event when it has none)."""
    state: State = State.PENDING
    attempts: int = 0
    in_dlq: bool = False
    lease: str | None = None


@dataclass(frozen=True)
class Word:
    """A create or delete the inbox stored about a version (redrives are not words about the object)."""

    seq: int
    kind: EventKind
    bucket: str
    key: str
    version_id: str | None
    version: str


@dataclass
class Model:
    seq: int = 0
    """Events so far. The inbox's own `seq` only has to increase (SQLite AUTOINCREMENT may spend numbers it does
    not use), so a version's `first_seq` is compared as the position of its first event."""
    occurrences: set[tuple] = field(default_factory=set)
    """(bucket, key, etag as sent, kind, token) of every stored event that names its occurrence."""
    words: list[Word] = field(default_factory=list)
    versions: dict[str, ModelVersion] = field(default_factory=dict)
    log: list[tuple] = field(default_factory=list)
    """(kind, bucket, key, etag, version_id) of every event, in sequence order."""

    def resolve(self, e: NotificationEvent) -> tuple[str, str | None]:
        same_key = [v for v in self.versions.values() if (v.bucket, v.key) == (e.bucket, e.key)]
        if e.version_id:
            candidates = [v for v in same_key if v.version_id == e.version_id]
        else:
            candidates = [v for v in same_key if v.state not in LIVE_EXCLUDED]
        if not candidates:
            return e.etag, e.version_id
        newest = max(candidates, key=lambda v: v.first_seq)
        return newest.etag, newest.version_id

    def absorbs(self, kind: EventKind, bucket: str, key: str, version_id: str | None, h: str) -> bool:
        mine = [w for w in self.words if w.version == h]
        if kind is EventKind.DELETED:
            return bool(mine) and mine[-1].kind is EventKind.DELETED
        creates = [w.seq for w in mine if w.kind is EventKind.CREATED]
        if version_id:
            return bool(creates) or any(w.kind is EventKind.DELETED and (w.bucket, w.key, w.version_id) == (
                bucket, key, version_id) for w in self.words)
        key_deletes = [w.seq for w in self.words if w.kind is EventKind.DELETED and (w.bucket, w.key) == (bucket, key)
                       and w.version_id is None]
        return bool(creates) and max(creates) > max(key_deletes, default=0)

    @staticmethod
    def occurrence(e: NotificationEvent) -> tuple | None:
        """What names the event's occurrence: its sequencer, or for a delete without an ETag its versionId."""
        token = (e.version_id or e.sequencer) if e.kind is EventKind.DELETED and not e.etag else e.sequencer
        return (e.bucket, e.key, e.etag, e.kind, token) if token else None

    def append(self, batch: list[NotificationEvent]) -> tuple[int, int]:
        inserted = 0
        for e in batch:
            occurrence = self.occurrence(e)
            if occurrence in self.occurrences:
                continue
            etagless_delete = e.kind is EventKind.DELETED and not e.etag
            etag, version_id = self.resolve(e) if etagless_delete else (e.etag, e.version_id)
            h = version_hash(e.bucket, e.key, etag, version_id)
            if self.absorbs(e.kind, e.bucket, e.key, version_id, h):
                continue
            if occurrence:
                self.occurrences.add(occurrence)
            inserted += 1
            self.seq += 1
            self.words.append(Word(self.seq, e.kind, e.bucket, e.key, version_id, h))
            self.log.append((e.kind, e.bucket, e.key, etag, version_id))
            created = e.kind is EventKind.CREATED
            v = self.versions.get(h)
            if v is None:
                self.versions[h] = ModelVersion(e.bucket, e.key, etag, version_id, self.seq, self.seq,
                                                State.PENDING if created else State.DELETED)
            elif created:
                v.state, v.attempts, v.in_dlq, v.arrival = State.PENDING, 0, False, self.seq
        return inserted, len(batch) - inserted

    def counts(self) -> dict[str, int]:
        counts = {state.value: 0 for state in State}
        for v in self.versions.values():
            counts[v.state.value] += 1
        return {**counts, "dlq": sum(v.in_dlq for v in self.versions.values())}


class InboxMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.home = Path(tempfile.mkdtemp(prefix="mediasift-inbox-model-"))
        self.inbox = Inbox(f"sqlite:///{self.home / 'inbox.db'}")
        self.model = Model()
        self.delivered: list[NotificationEvent] = []

    def teardown(self):
        self.inbox.close()
        shutil.rmtree(self.home, ignore_errors=True)

    def pick(self, data, predicate=lambda v: True) -> str:
        return data.draw(st.sampled_from(sorted(h for h, v in self.model.versions.items() if predicate(v))))

    def has(self, predicate) -> bool:
        return any(predicate(v) for v in self.model.versions.values())

    @initialize(batch=st.lists(events, min_size=1, max_size=3))
    def first_notifications(self, batch):
        self.append(batch)

    @rule(batch=st.lists(events, min_size=1, max_size=4))
    def append(self, batch):
        self.delivered += batch
        result = self.inbox.append(batch)
        assert (result.inserted, result.duplicates) == self.model.append(batch)

    @precondition(lambda self: self.delivered)
    @rule(data=st.data(), source=st.sampled_from(SOURCES))
    def redeliver(self, data, source):
        """An event delivered before, again, from any sender. One that names its occurrence is absorbed whatever
        happened since; one that does not is judged like any event (after a delete, a create is a new arrival)."""
        e = data.draw(st.sampled_from(self.delivered))
        again = NotificationEvent(source, e.kind, e.bucket, e.key, e.etag, version_id=e.version_id,
                                  sequencer=e.sequencer)
        stored = self.model.occurrence(e) in self.model.occurrences
        result = self.inbox.append([again])
        assert (result.inserted, result.duplicates) == self.model.append([again])
        if stored:
            assert (result.inserted, result.duplicates) == (0, 1)

    @precondition(lambda self: self.has(lambda v: not v.in_dlq))
    @rule(data=st.data(), owner=st.sampled_from(OWNERS))
    def claim(self, data, owner):
        """Dead-lettered versions are claimed again only through a redrive (which clears the flag)."""
        v = self.model.versions[vh := self.pick(data, lambda v: not v.in_dlq)]
        admitted = v.lease in (None, owner)
        assert self.inbox.claim(vh, owner, LEASE_SECONDS) is admitted
        if admitted:
            v.state, v.attempts, v.lease = State.RUNNING, v.attempts + 1, owner

    @precondition(lambda self: self.has(lambda v: v.state is State.RUNNING))
    @rule(data=st.data(), unsupported=st.booleans())
    def finish(self, data, unsupported):
        """The version is indexed (or no layer takes it): the finished version of a key that arrived last is
        current; a newer finished one makes this one superseded, and this one supersedes older finished ones."""
        v = self.model.versions[vh := self.pick(data, lambda v: v.state is State.RUNNING)]
        others = {h: u for h, u in self.model.versions.items()
                  if (u.bucket, u.key) == (v.bucket, v.key) and h != vh and u.state in FINISHED}
        newer = any(u.arrival > v.arrival for u in others.values())
        older = {h for h, u in others.items() if u.arrival < v.arrival}
        v.state = State.SUPERSEDED if newer else (State.UNSUPPORTED if unsupported else State.DONE)
        v.in_dlq, v.lease = False, None
        for h in older:
            self.model.versions[h].state = State.SUPERSEDED
        state, superseded = self.inbox.mark_done(vh, unsupported="no layer takes it" if unsupported else None)
        assert (state, set(superseded)) == (v.state, older)

    @precondition(lambda self: self.has(lambda v: v.state is State.RUNNING))
    @rule(data=st.data(), attempt=st.integers(1, MAX_ATTEMPTS))
    def fail(self, data, attempt):
        v = self.model.versions[vh := self.pick(data, lambda v: v.state is State.RUNNING)]
        last = attempt == MAX_ATTEMPTS
        self.inbox.mark_failed(vh, "OSError: 503 SlowDown", dead_letter=last, attempt=attempt)
        v.state, v.in_dlq, v.attempts, v.lease = State.FAILED, last, max(v.attempts, attempt), None

    @precondition(lambda self: self.has(lambda v: v.state is State.RUNNING))
    @rule(data=st.data())
    def supersede(self, data):
        """The run found the key overwritten since the event (HEAD names another ETag)."""
        v = self.model.versions[vh := self.pick(data, lambda v: v.state is State.RUNNING)]
        self.inbox.mark_superseded(vh, "current etag is e9")
        v.state, v.in_dlq, v.lease = State.SUPERSEDED, False, None

    @precondition(lambda self: self.model.versions)
    @rule(data=st.data())
    def tombstone(self, data):
        """A delete event's run (it does not claim), or a run that found the key gone: a dead-lettered version
        leaves the DLQ."""
        v = self.model.versions[vh := self.pick(data)]
        self.inbox.mark_deleted(vh)
        v.state, v.in_dlq, v.lease = State.DELETED, False, None

    @precondition(lambda self: self.model.versions)
    @rule(data=st.data())
    def redrive(self, data):
        """`mediasift dlq retry` of some versions, dead-lettered or not: only the dead-lettered are redriven."""
        chosen = data.draw(st.sets(st.sampled_from(sorted(self.model.versions)), min_size=1, max_size=4))
        cursor = self.inbox.last_seq()
        redriven = {r.version_hash for r in self.inbox.redrive(sorted(chosen))}
        expected = {h for h in chosen if self.model.versions[h].in_dlq}
        assert redriven == expected
        new = self.inbox.events_after(cursor, 100)
        assert sorted((e.source, e.kind, e.version_hash) for e in new) == sorted(
            (Source.REDRIVE.value, EventKind.CREATED, h) for h in expected), new
        for e in new:
            self.model.seq += 1
            self.model.log.append((e.kind, e.bucket, e.key, e.etag, e.version_id))
        for h in expected:
            v = self.model.versions[h]
            v.state, v.in_dlq, v.attempts, v.lease = State.PENDING, False, 0, None

    @precondition(lambda self: self.model.versions)
    @rule(data=st.data())
    def purge(self, data):
        chosen = data.draw(st.sets(st.sampled_from(sorted(self.model.versions)), min_size=1, max_size=4))
        expected = [h for h in chosen if self.model.versions[h].in_dlq]
        assert self.inbox.purge(sorted(chosen)) == len(expected)
        for h in expected:
            self.model.versions[h].in_dlq = False

    @invariant()
    def agrees_with_the_model(self):
        model = self.model
        assert self.inbox.counts() == model.counts()
        assert self.inbox.depth() == model.counts()[State.PENDING.value]
        log = self.inbox.events_after(0, 10_000)
        assert [(e.kind, e.bucket, e.key, e.etag, e.version_id) for e in log] == model.log
        seqs = [e.seq for e in log]
        assert seqs == sorted(set(seqs)) and self.inbox.last_seq() == (seqs[-1] if seqs else 0)
        real = self.inbox.versions(sorted(model.versions))
        assert {h: (r.bucket, r.key, r.etag, r.first_seq, r.state, r.attempts, r.in_dlq) for h, r in real.items()} == {
            h: (v.bucket, v.key, v.etag, seqs[v.first_seq - 1], v.state, v.attempts, v.in_dlq)
            for h, v in model.versions.items()}
        for bucket in BUCKETS:
            assert {r.version_hash for r in self.inbox.live_versions(bucket)} == {
                h for h, v in model.versions.items() if v.bucket == bucket and v.state not in LIVE_EXCLUDED}

    @invariant()
    def dead_letters_are_exactly_the_versions_failed_on_their_last_attempt(self):
        dead = self.inbox.dead_letters()
        assert {r.version_hash for r in dead} == {h for h, v in self.model.versions.items() if v.in_dlq}
        assert all(r.state is State.FAILED for r in dead)

    @invariant()
    def a_key_has_at_most_one_current_finished_version(self):
        finished = [(v.bucket, v.key) for v in self.model.versions.values() if v.state in FINISHED]
        assert len(finished) == len(set(finished))


InboxMachine.TestCase.settings = settings(FUZZ, max_examples=examples(40), stateful_step_count=25)
test_inbox_agrees_with_its_model = InboxMachine.TestCase


def created(key: str, etag: str, version_id: str | None = None, source: Source = Source.S3) -> NotificationEvent:
    return NotificationEvent(source, EventKind.CREATED, "media", key, etag, version_id=version_id)


def deleted(key: str, etag: str = "", version_id: str | None = None) -> NotificationEvent:
    return NotificationEvent(Source.S3, EventKind.DELETED, "media", key, etag, version_id=version_id)


@pytest.fixture
def inbox(tmp_path):
    box = Inbox(f"sqlite:///{tmp_path / 'inbox.db'}")
    yield box
    box.close()


def test_deleted_dead_letter_leaves_the_dead_letter_queue(inbox):
    inbox.append([created("clip.mp4", "e1")])
    h = created("clip.mp4", "e1").version_hash
    assert inbox.claim(h, "run-1", LEASE_SECONDS)
    inbox.mark_failed(h, "OSError: 503", dead_letter=True, attempt=MAX_ATTEMPTS)
    inbox.append([deleted("clip.mp4")])  # an S3 ObjectRemoved record: no eTag, resolved to the failed version
    assert inbox.events_after(0, 10)[-1].version_hash == h
    inbox.mark_deleted(h)  # the delete event's tombstone run
    assert inbox.dead_letters() == [] and inbox.counts()["dlq"] == 0


def test_redelivered_delete_without_etag_is_absorbed(inbox):
    inbox.append([created("clip.mp4", "e0")])
    delete = NotificationEvent(Source.S3, EventKind.DELETED, "media", "clip.mp4", "", sequencer="0055AED6DCD90281E5")
    inbox.append([delete])
    inbox.mark_deleted(created("clip.mp4", "e0").version_hash)
    inbox.append([created("clip.mp4", "e1")])  # the key is written again
    redelivered = inbox.append([delete])  # S3/SNS deliver at least once
    assert (redelivered.inserted, redelivered.duplicates) == (0, 1)
    assert inbox.events_after(0, 10)[-1].etag == "e1"  # the newest event is still the create of e1


def test_same_bytes_uploaded_again_after_a_delete_are_live_again(inbox):
    inbox.append([created("clip.mp4", "e1")])
    h = created("clip.mp4", "e1").version_hash
    inbox.append([deleted("clip.mp4", "e1")])
    inbox.mark_deleted(h)
    inbox.append([created("clip.mp4", "e1")])  # the webhook of the new upload
    inbox.append([created("clip.mp4", "e1", source=Source.RECONCILE)])  # and the sweep, which lists it
    assert [v.key for v in inbox.live_versions("media")] == ["clip.mp4"]


def test_versioned_delete_without_etag_resolves_to_the_version_it_names(inbox):
    inbox.append([created("clip.mp4", "e1", version_id="v1"), created("clip.mp4", "e2", version_id="v2")])
    inbox.append([deleted("clip.mp4", version_id="v1")])  # S3 ObjectRemoved:Delete of version v1: no eTag
    last = inbox.events_after(0, 10)[-1]
    assert (last.etag, last.version_id) == ("e1", "v1")
