"""Notification parsers: each source's body → `Parsed` (a list of `NotificationEvent`)."""

from __future__ import annotations

from collections.abc import Mapping

from mediasift.intake.events import EventKind, NotificationEvent, Parsed, Source, load_json
from mediasift.intake.parsers import s3, seaweedfs, tigris

__all__ = ["EventKind", "NotificationEvent", "Parsed", "Source", "parse_notification"]


def parse_notification(source: Source, body: bytes, headers: Mapping[str, str] | None = None) -> Parsed:
    """Parse a raw POST body from `source`; raises PayloadError naming the bad field."""
    if source is Source.TIGRIS and (parsed := tigris.parse_bytes(body)) is not None:
        return parsed
    document = load_json(body, "body")
    if source is Source.TIGRIS:
        return tigris.parse(document)
    if source is Source.SEAWEEDFS:
        return seaweedfs.parse(document)
    if source is Source.S3:
        return s3.parse(document, {k.lower(): v for k, v in (headers or {}).items()})
    raise ValueError(f"no parser for source {source}")
