"""AWS S3 `Records[]` (directly, inside an SNS envelope, or in MinIO's wrapper)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mediasift.errors import PayloadError
from mediasift.intake.events import EventKind, NotificationEvent, Parsed, Size, Source, load_json, payload_error


class _Object(BaseModel):
    model_config = ConfigDict(extra="allow")
    key: str = Field(min_length=1)
    size: Size = None
    eTag: str | None = None
    versionId: str | None = None
    sequencer: str | None = None


class _Bucket(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1)


class _S3(BaseModel):
    model_config = ConfigDict(extra="allow")
    bucket: _Bucket
    object: _Object


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")
    eventName: str
    eventTime: datetime | None = None
    s3: _S3


class _Records(BaseModel):
    model_config = ConfigDict(extra="allow")
    Records: list[_Record]


class _Sns(BaseModel):
    model_config = ConfigDict(extra="allow")
    Type: str
    Message: str | None = None
    SubscribeURL: str | None = None


def _kind(name: str) -> EventKind | None:
    """Created and removed objects matter; every other event family (tagging, restore, test events,
    names AWS adds later) is acknowledged and ignored."""
    name = name.removeprefix("s3:")
    if name.startswith("ObjectCreated:"):
        return EventKind.CREATED
    if name.startswith(("ObjectRemoved:", "LifecycleExpiration:Delete")):
        return EventKind.DELETED
    return None


def _records(body: Any, prefix: str = "") -> Parsed:
    """`prefix`: where the records sit in the POST body (`Message` inside an SNS envelope), for field names."""
    if not isinstance(body, dict):
        raise PayloadError(prefix or "body", "expected a JSON object")
    if "Records" not in body:
        return Parsed(ignored=1)
    try:
        records = _Records.model_validate(body).Records
    except ValidationError as error:
        raise payload_error(error, prefix) from None
    parsed = Parsed()
    for record in records:
        kind = _kind(record.eventName)
        if kind is None:
            parsed.ignored += 1
            continue
        obj = record.s3.object
        parsed.events.append(NotificationEvent(
            Source.S3, kind, record.s3.bucket.name, unquote_plus(obj.key), obj.eTag or "",
            version_id=obj.versionId or None, size=obj.size,
            sequencer=obj.sequencer,
        ))
    return parsed


def parse(body: Any, headers: Mapping[str, str]) -> Parsed:
    sns_type = headers.get("x-amz-sns-message-type")
    if sns_type is None and isinstance(body, dict) and body.get("Type") in ("Notification",
                                                                          "SubscriptionConfirmation"):
        sns_type = body["Type"]
    if sns_type is None:
        return _records(body)
    try:
        envelope = _Sns.model_validate(body)
    except ValidationError as error:
        raise payload_error(error) from None
    if envelope.Type == "SubscriptionConfirmation":
        if not envelope.SubscribeURL:
            raise PayloadError("SubscribeURL", "SubscriptionConfirmation without SubscribeURL")
        return Parsed(subscribe_url=envelope.SubscribeURL)
    if envelope.Type != "Notification":
        return Parsed(ignored=1)
    if envelope.Message is None:
        raise PayloadError("Message", "Field required")
    return _records(load_json(envelope.Message, "Message"), "Message")
