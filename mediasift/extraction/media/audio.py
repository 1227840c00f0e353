"""Audio as 16 kHz mono float32 chunks (Whisper's input), decoded a chunk at a time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from mediasift.errors import MediaError

SAMPLE_RATE = 16_000


def has_audio(path: Path) -> bool:
    try:
        with av.open(str(path)) as container:
            return bool(container.streams.audio)
    except av.error.FFmpegError as error:
        raise MediaError(f"cannot open media: {error}") from error


def iter_audio_chunks(path: Path, chunk_seconds: float = 300.0) -> Iterator[tuple[float, np.ndarray]]:
    """(offset in seconds, samples) for consecutive chunks of the first audio track."""
    chunk_len = int(chunk_seconds * SAMPLE_RATE)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    pending: list[np.ndarray] = []
    pending_len = 0
    offset = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return
            stream = container.streams.audio[0]
            for frame in _frames_then_flush(container.decode(stream)):
                for out in resampler.resample(frame):
                    samples = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                    pending.append(samples)
                    pending_len += samples.size
                while pending_len >= chunk_len:
                    joined = np.concatenate(pending)
                    yield offset / SAMPLE_RATE, joined[:chunk_len]
                    offset += chunk_len
                    rest = joined[chunk_len:]
                    pending, pending_len = [rest], rest.size
    except av.error.FFmpegError as error:
        raise MediaError(f"cannot decode audio: {error}") from error
    if pending_len:
        yield offset / SAMPLE_RATE, np.concatenate(pending)


def _frames_then_flush(frames):
    yield from frames
    yield None
