"""SeaweedFS filer webhook events: one filer entry change per POST.

The filer reports every entry under `/buckets`, so most of the work is deciding what is an object:
directories, bucket creation, multipart part files under `.uploads/` and `/buckets/.system/` are not.
Versioned buckets store versions as `<key>.versions/v_<id>`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mediasift.errors import PayloadError
from mediasift.intake.events import EventKind, NotificationEvent, Parsed, Size, Source, payload_error

ETAG_HEADER = "Seaweed-X-Amz-ETag"
VERSIONS_MARKER = ".versions/"


class _Attributes(BaseModel):
    model_config = ConfigDict(extra="allow")
    file_size: Size = None
    mtime: int | None = None
    md5: str | None = None


class _Entry(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = ""
    is_directory: bool = False
    attributes: _Attributes = Field(default_factory=_Attributes)
    extended: dict[str, str] = Field(default_factory=dict)


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    old_entry: _Entry | None = None
    new_entry: _Entry | None = None
    new_parent_path: str | None = None


class _Event(BaseModel):
    model_config = ConfigDict(extra="allow")
    event_type: str
    key: str = Field(min_length=1)
    message: _Message


def _b64(value: str, where: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise PayloadError(where, "not valid base64") from None


def _etag(entry: _Entry, where: str) -> str:
    """The S3 ETag is stored as the base64 of its text; a plain put may carry only the raw MD5."""
    if ETAG_HEADER in entry.extended:
        field = f"{where}.extended.{ETAG_HEADER}"
        try:
            return _b64(entry.extended[ETAG_HEADER], field).decode()
        except UnicodeDecodeError:
            raise PayloadError(field, "the base64 does not decode to UTF-8 text") from None
    if entry.attributes.md5:
        return _b64(entry.attributes.md5, f"{where}.attributes.md5").hex()
    raise PayloadError(f"{where}.extended.{ETAG_HEADER}", "Field required (no ETag and no md5)")


def object_location(path: str) -> tuple[str, str, str | None] | None:
    """(bucket, key, version_id) of a filer path, or None when the path is not an object."""
    if not path.startswith("/buckets/"):
        return None
    bucket, _, key = path[len("/buckets/"):].partition("/")
    if not bucket or not key or bucket.startswith(".") or key.startswith(".uploads/"):
        return None
    if VERSIONS_MARKER in key:
        key, _, version_file = key.partition(VERSIONS_MARKER)
        if not version_file.startswith("v_") or "/" in version_file:
            return None
        return bucket, key, version_file[2:]
    return bucket, key, None


def _event(kind: EventKind, path: str, entry: _Entry | None, where: str) -> NotificationEvent | None:
    if entry is None:
        raise PayloadError(where, "Field required")
    location = object_location(path)
    if entry.is_directory or location is None:
        return None
    bucket, key, version_id = location
    return NotificationEvent(Source.SEAWEEDFS, kind, bucket, key, _etag(entry, where), version_id=version_id,
                             size=entry.attributes.file_size)


def parse(body: Any) -> Parsed:
    if not isinstance(body, dict):
        raise PayloadError("body", "expected a JSON object")
    try:
        event = _Event.model_validate(body)
    except ValidationError as error:
        raise payload_error(error) from None
    message = event.message
    if event.event_type in ("create", "update"):
        candidates = [_event(EventKind.CREATED, event.key, message.new_entry, "message.new_entry")]
    elif event.event_type == "delete":
        candidates = [_event(EventKind.DELETED, event.key, message.old_entry, "message.old_entry")]
    elif event.event_type == "rename":
        if message.new_entry is None:
            raise PayloadError("message.new_entry", "Field required for a rename")
        if message.new_parent_path is None:
            raise PayloadError("message.new_parent_path", "Field required for a rename")
        new_path = f"{message.new_parent_path.rstrip('/')}/{message.new_entry.name}"
        candidates = [
            _event(EventKind.DELETED, event.key, message.old_entry, "message.old_entry"),
            _event(EventKind.CREATED, new_path, message.new_entry, "message.new_entry"),
        ]
    else:
        raise PayloadError("event_type", f"unknown SeaweedFS event type {event.event_type!r}")
    parsed = Parsed()
    for candidate in candidates:
        if candidate is None:
            parsed.ignored += 1
        else:
            parsed.events.append(candidate)
    return parsed
