"""The reconcile sweep: the bucket listing is the truth, the inbox is repaired to match it.

SeaweedFS delivers notifications at most once, and any receiver can be down, so every current object
the inbox has not seen is enqueued as created, and every live version whose key is gone (or now holds
another ETag, without a create event for it) is handled. Enqueued events are ordinary inbox events,
de-duplicated like webhook ones, so a sweep enqueues each missed object exactly once.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from mediasift.inbox import Inbox
from mediasift.intake.events import EventKind, NotificationEvent, Source
from mediasift.store.s3 import ObjectStore

log = logging.getLogger(__name__)
LOCK_NAME = "reconcile"


@dataclass(frozen=True)
class SweepResult:
    bucket: str
    listed: int
    created: int
    """Events enqueued for current objects the inbox had not seen (duplicates not counted)."""
    deleted: int
    """Events enqueued for live versions whose key is gone."""


def sweep(inbox: Inbox, storage: ObjectStore, bucket: str, *, ignore_prefix: str = "",
          lock_ttl_seconds: float = 3600) -> SweepResult:
    """One sweep of one bucket, under the inbox's reconcile lock (raises LockHeld if one runs)."""
    with inbox.lock(f"{LOCK_NAME}:{bucket}", uuid.uuid4().hex, lock_ttl_seconds):
        known: dict[str, set[tuple[str, str | None]]] = {}
        for record in inbox.live_versions(bucket):
            known.setdefault(record.key, set()).add((record.etag, record.version_id))
        missing: list[NotificationEvent] = []
        listed: set[str] = set()
        for key, head in storage.list_objects(bucket):
            if ignore_prefix and key.startswith(ignore_prefix):
                continue
            listed.add(key)
            if head.etag not in {etag for etag, _ in known.get(key, ())}:
                missing.append(NotificationEvent(Source.RECONCILE, EventKind.CREATED, bucket, key, head.etag,
                                                 size=head.size))
        gone = [
            NotificationEvent(Source.RECONCILE, EventKind.DELETED, bucket, key, etag, version_id=version_id)
            for key, versions in known.items() if key not in listed
            for etag, version_id in sorted(versions, key=lambda v: (v[0], v[1] or ""))
        ]
        created, deleted = inbox.append(missing).inserted, inbox.append(gone).inserted
    log.info("reconcile bucket=%s listed=%d created=%d deleted=%d", bucket, len(listed), created, deleted)
    return SweepResult(bucket, len(listed), created, deleted)
