"""The one shape every notification source is parsed into."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any

from pydantic import Field, ValidationError

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
    """What tells this occurrence from another of the same event on the same version: S3's `sequencer`,
    Tigris's `eventTime` (or the flat form's `lastModified`). A redelivery carries the same one, a new upload
    or delete a new one, so the inbox can absorb the one without losing the other."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "etag", normalize_etag(self.etag))

    @cached_property
    def version_hash(self) -> str:
        """Computed once: the inbox asks for it several times per event on the receiver's hot path."""
        return version_hash(self.bucket, self.key, self.etag, self.version_id)


@dataclass
class Parsed:
    """What one POST held: object events, the number of non-object events ignored, and an SNS
    subscription URL to confirm, if the body was a SubscriptionConfirmation."""

    events: list[NotificationEvent] = field(default_factory=list)
    ignored: int = 0
    subscribe_url: str | None = None


SIZE_LIMIT = 2**63
Size = Annotated[int, Field(ge=0, lt=SIZE_LIMIT)] | None
"""An object size as a body gives it, for the parsers' models: absent, or 0 <= size < 2**63. The inbox stores
sizes in a signed 64-bit column; a larger one is refused as a bad field, not left to the INSERT to fail on."""


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


def load_json(text: str | bytes, field: str) -> Any:
    """JSON, or a PayloadError naming `field`. Besides malformed text (JSONDecodeError) and bytes that are not
    UTF-8 (UnicodeDecodeError), json refuses valid JSON it cannot hold: integer literals past Python's digit
    limit (a plain ValueError) and nesting past the interpreter's recursion limit (RecursionError, from a
    body of about 1 KB); a sender's body must never turn into a 500. The messages hold no ': ', which a 400's
    `<field>: <message>` detail uses to separate them."""
    try:
        return json.loads(text)
    except RecursionError:
        raise PayloadError(field, "JSON nested too deeply") from None
    except json.JSONDecodeError as error:
        raise PayloadError(field, f"malformed JSON ({error.msg} at line {error.lineno} column {error.colno})"
                           ) from None
    except UnicodeDecodeError:
        raise PayloadError(field, "not UTF-8 text") from None
    except ValueError:
        raise PayloadError(field, "a JSON number too long to convert (more than 4,300 digits)") from None
