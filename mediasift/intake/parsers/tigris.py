"""Tigris object notifications: the documented `events[]` form and the flat single-event form."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mediasift.errors import PayloadError
from mediasift.intake.events import EventKind, NotificationEvent, Parsed, Size, Source, payload_error

KINDS = {
    "OBJECT_CREATED_PUT": EventKind.CREATED,
    "OBJECT_CREATED_MULTIPART": EventKind.CREATED,
    "OBJECT_CREATED_COPY": EventKind.CREATED,
    "OBJECT_RENAME": EventKind.CREATED,
    "OBJECT_DELETED": EventKind.DELETED,
}
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


class _Object(BaseModel):
    model_config = ConfigDict(extra="allow")
    key: str = Field(min_length=1)
    size: Size = None
    eTag: str | None = None


class _Event(BaseModel):
    model_config = ConfigDict(extra="allow")
    eventName: str
    bucket: str = Field(min_length=1)
    object: _Object
    eventTime: datetime | None = None


class _Envelope(BaseModel):
    events: list[_Event]


class _Flat(BaseModel):
    model_config = ConfigDict(extra="allow")
    eventType: str
    bucket: str = Field(min_length=1)
    key: str = Field(min_length=1)
    size: Size = None
    etag: str | None = None
    lastModified: datetime | None = None


def decode_key(key: str) -> str:
    """Tigris does not document whether keys are URL-encoded. A key with `%XX` escapes and no
    character that an encoder would have escaped is taken as encoded; anything else is raw."""
    if _ESCAPE.search(key) and key.isascii() and " " not in key:
        return unquote(key)
    return key


def _event(name: str, bucket: str, key: str, etag: str | None, size: int | None,
           when: datetime | None) -> NotificationEvent | None:
    """None for events that do not change which object version exists (OBJECT_TRANSITIONED,
    and names Tigris may add later): they are acknowledged and ignored. `when` (the event's time) becomes the
    sequencer: a POST Tigris delivers again after a timeout repeats it, a new upload of the same bytes does not."""
    if name not in KINDS:
        return None
    return NotificationEvent(Source.TIGRIS, KINDS[name], bucket, decode_key(key), etag or "", size=size,
                             sequencer=when.isoformat() if when else None)


def parse_bytes(body: bytes) -> Parsed | None:
    """The documented form read straight from the raw body: pydantic parses the JSON itself into the envelope,
    in one pass and without a dict per object first. This is the receiver's hot path. None when that fails,
    whatever the reason, so that `parse` (of the JSON document) says what is wrong, in the same words as for
    any body; what this accepts, `parse` accepts with the same result (a property test holds them equal)."""
    try:
        envelope = _Envelope.model_validate_json(body)
    except (ValueError, RecursionError):  # ValidationError is a ValueError
        return None
    return _envelope_events(envelope)


def parse(body: Any) -> Parsed:
    if not isinstance(body, dict):
        raise PayloadError("body", "expected a JSON object")
    if "events" in body:
        try:
            return _envelope_events(_Envelope.model_validate(body))
        except ValidationError as error:
            raise payload_error(error) from None
    try:
        flat = _Flat.model_validate(body)
    except ValidationError as error:
        raise payload_error(error) from None
    return _collect([_event(flat.eventType, flat.bucket, flat.key, flat.etag, flat.size, flat.lastModified)])


def _envelope_events(envelope: _Envelope) -> Parsed:
    return _collect([_event(e.eventName, e.bucket, e.object.key, e.object.eTag, e.object.size, e.eventTime)
                     for e in envelope.events])


def _collect(candidates: list[NotificationEvent | None]) -> Parsed:
    parsed = Parsed()
    for event in candidates:
        if event is None:
            parsed.ignored += 1
        else:
            parsed.events.append(event)
    return parsed
