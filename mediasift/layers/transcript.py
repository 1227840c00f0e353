"""Transcript: segments and words with t_start/t_end, from audio or a video's audio track."""

from __future__ import annotations

from pathlib import Path

from threadpoolctl import threadpool_limits

from mediasift.layers.rows import Row
from mediasift.media.audio import iter_audio_chunks

EXTRACTOR = "faster-whisper@1"


def transcribe(path: Path, whisper, modality: str, chunk_seconds: float = 300.0) -> list[Row]:
    """Audio is decoded and transcribed a chunk at a time; timestamps are shifted by the chunk offset.

    BLAS runs single-threaded here: Whisper's features are computed with NumPy, and a different BLAS
    thread count (Ray sets one thread per actor CPU) shifts word timestamps by a frame. Pinning it makes
    the rows the same wherever the work runs."""
    rows: list[Row] = []
    for offset, samples in iter_audio_chunks(path, chunk_seconds):
        with threadpool_limits(limits=1, user_api="blas"):
            segments, _ = whisper.transcribe(samples, language="en", word_timestamps=True, beam_size=1,
                                             vad_filter=False, condition_on_previous_text=False)
            segments = list(segments)
        for segment in segments:
            text = segment.text.strip()
            if not text:
                continue
            rows.append(Row("transcript", modality, "segment", text, offset + segment.start, offset + segment.end))
            rows.extend(
                Row("transcript", modality, "word", word.word.strip(), offset + word.start, offset + word.end,
                    extra={"probability": round(float(word.probability), 3)}, indexed=False)
                for word in segment.words or []
            )
    return rows
