"""Transcript: sentences and words with t_start/t_end, from audio or a video's audio track.

Whisper's own segments run across sentence ends (and where they break shifts with tiny numeric
differences), so the searchable rows are sentences cut at sentence-final punctuation using the word
timestamps: a hit then points at the sentence that was said, not at the start of a 30-second window.
"""

from __future__ import annotations

from pathlib import Path

from threadpoolctl import threadpool_limits

from mediasift.extraction.layers.rows import Row
from mediasift.extraction.media.audio import iter_audio_chunks

EXTRACTOR = "faster-whisper@1"
SENTENCE_END = (".", "?", "!")


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
        words = [
            Row("transcript", modality, "word", w.word.strip(), offset + w.start, offset + w.end,
                extra={"probability": round(float(w.probability), 3)}, indexed=False)
            for segment in segments for w in segment.words or [] if w.word.strip()
        ]
        rows.extend(sentences(words, modality))
        rows.extend(words)
    return rows


def sentences(words: list[Row], modality: str) -> list[Row]:
    found, current = [], []
    for word in words:
        current.append(word)
        if word.text.endswith(SENTENCE_END):
            found.append(_sentence(current, modality))
            current = []
    if current:
        found.append(_sentence(current, modality))
    return found


def _sentence(words: list[Row], modality: str) -> Row:
    return Row("transcript", modality, "sentence", " ".join(w.text for w in words), words[0].t_start,
               words[-1].t_end, extra={"words": len(words)})
