"""The first step of every object version's run: confirm the notified version is still the current one
(HEAD) and claim it. Reading it (pinned to the ETag, with sha256 and the sniffed content type) is left to
the extraction worker, so each object is read once, where it is extracted. The version stays `running`
until its layers are indexed.

A version that was overwritten since its event is superseded, not extracted; a version that is gone is
deleted. Failures count attempts; the last allowed attempt puts the version in the dead-letter queue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mediasift.errors import LockHeld, MediasiftError
from mediasift.events.models import EventKind
from mediasift.identity import ObjectVersion
from mediasift.inbox import Inbox, State, VersionRecord
from mediasift.storage import Fetched, Storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    state: State
    version: ObjectVersion
    fetched: Fetched | None = None
    reason: str | None = None

    def metadata(self) -> dict[str, object]:
        """Lineage and content facts (once a worker has read the version), as shown on the materialization."""
        state = "read" if self.state is State.RUNNING else self.state.value
        facts: dict[str, object] = {**self.version.lineage(), "state": state}
        if self.fetched is not None:
            facts.update(size=self.fetched.size, content_type=self.fetched.content_type,
                         sha256=self.fetched.sha256)
        if self.reason:
            facts["reason"] = self.reason
        return facts


def object_version(record: VersionRecord) -> ObjectVersion:
    return ObjectVersion(record.bucket, record.key, record.etag, record.version_id, record.size,
                         record.content_type)


def process_version(inbox: Inbox, storage: Storage, version_hash: str, kind: EventKind, *, run_id: str,
                    attempt: int, max_attempts: int, lease_seconds: float) -> Outcome:
    record = inbox.version(version_hash)
    if record is None:
        raise MediasiftError(f"version {version_hash} is not in the inbox")
    version = object_version(record)
    if attempt > 1 and record.state is State.DONE:
        return Outcome(State.DONE, version, reason="already indexed by an earlier attempt")
    if kind is EventKind.DELETED:
        inbox.mark_deleted(version_hash)
        log.info("object_deleted uri=%s etag=%s", version.uri, version.etag)
        return Outcome(State.DELETED, version)
    if not inbox.claim(version_hash, run_id, lease_seconds):
        raise LockHeld(f"{version.uri} (etag {version.etag}) is being processed by another run")
    try:
        outcome = _check_current(storage, version)
    except Exception as error:
        dead_letter = attempt >= max_attempts
        inbox.mark_failed(version_hash, f"{type(error).__name__}: {error}", dead_letter=dead_letter)
        log.warning("object_failed uri=%s etag=%s attempt=%d dlq=%s error=%s", version.uri, version.etag,
                    attempt, dead_letter, error)
        raise
    if outcome.state is State.SUPERSEDED:
        inbox.mark_superseded(version_hash, outcome.reason or "superseded")
    elif outcome.state is State.DELETED:
        inbox.mark_deleted(version_hash)
    log.info("object_%s uri=%s etag=%s", outcome.state.value, version.uri, version.etag)
    return outcome


def _check_current(storage: Storage, version: ObjectVersion) -> Outcome:
    head = storage.head(version.bucket, version.key)
    if head is None:
        return Outcome(State.DELETED, version, reason="object no longer exists")
    if not version.version_id and head.etag != version.etag:
        return Outcome(State.SUPERSEDED, version, reason=f"current etag is {head.etag}")
    return Outcome(State.RUNNING, version)
