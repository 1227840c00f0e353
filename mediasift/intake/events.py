"""The one shape every notification source is parsed into."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import ValidationError

from mediasift.errors import PayloadError
from mediasift.identity import normalize_etag, version_hash


class EventKind(StrEnum):
    CREATED = "created"
    DELETED = "deleted"


class Source(StrEnum):
    TIGRIS = "tigris"
    SEAWEEDFS = "seaweedfs"
    S3 = "s3"
    RECONCILE = "reconcile"
    REDRIVE = "redrive"
    """`mediasift dlq retry`: a dead-lettered version sent through the pipeline again."""


@dataclass(frozen=True)
class NotificationEvent:
    """One object-level change. `etag` may be empty for a delete; the inbox resolves it."""

    source: Source
    kind: EventKind
    bucket: str
    key: str
    etag: str = ""
    version_id: str | None = None
    size: int | None = None
    sequencer: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "etag", normalize_etag(self.etag))

    @property
    def version_hash(self) -> str:
        return version_hash(self.bucket, self.key, self.etag, self.version_id)


@dataclass
class Parsed:
    """What one POST held: object events, the number of non-object events ignored, and an SNS
    subscription URL to confirm, if the body was a SubscriptionConfirmation."""

    events: list[NotificationEvent] = field(default_factory=list)
    ignored: int = 0
    subscribe_url: str | None = None


def field_path(loc: tuple) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def payload_error(error: ValidationError, prefix: str = "") -> PayloadError:
    """The first validation problem, named by its path in the body (`events[0].object.key`)."""
    first = error.errors()[0]
    path = field_path(first["loc"])
    if prefix:
        path = prefix if path == "body" else f"{prefix}.{path}"
    return PayloadError(path, first["msg"])
