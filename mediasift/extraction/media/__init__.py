"""Decoding only: bytes on disk → frames, audio samples, images, PDF pages. Streamed, so a two-hour
video or a 500-page PDF never sits in memory whole."""

from __future__ import annotations

import mimetypes
from enum import StrEnum
from pathlib import PurePosixPath


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


def refusal(key: str, content_type: str, size: int) -> str | None:
    """Why no layer takes this object, or None when one does. The bytes decide; the key's extension only
    names the contradiction when the bytes are something no layer reads."""
    if size == 0:
        return "unsupported: empty object (0 bytes)"
    if modality_of(content_type) is not Modality.OTHER:
        return None
    claimed = claimed_modality(key)
    if claimed is not Modality.OTHER:
        return f"content is {content_type} but the key says {PurePosixPath(key).suffix.lower()}"
    return f"unsupported: {content_type}"


def claimed_modality(key: str) -> Modality:
    """The modality the key's extension stands for (OTHER for none, or one no layer reads)."""
    guessed, _ = mimetypes.guess_type(PurePosixPath(key).name, strict=False)
    return modality_of(guessed)
