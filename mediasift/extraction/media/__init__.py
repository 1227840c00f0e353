"""Decoding only: bytes on disk → frames, audio samples, images, PDF pages. Streamed, so a two-hour
video or a 500-page PDF never sits in memory whole."""

from __future__ import annotations

from enum import StrEnum


class Modality(StrEnum):
    VIDEO = "video"
    AUDIO = "audio"
    IMAGE = "image"
    PDF = "pdf"
    OTHER = "other"


def modality_of(content_type: str | None) -> Modality:
    """The modality from the sniffed content type (never the key's extension)."""
    content_type = (content_type or "").lower()
    if content_type == "application/pdf":
        return Modality.PDF
    for prefix, modality in (("video/", Modality.VIDEO), ("audio/", Modality.AUDIO), ("image/", Modality.IMAGE)):
        if content_type.startswith(prefix):
            return modality
    return Modality.OTHER
