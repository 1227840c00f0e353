"""Scenes: shot boundaries from decoded frames, a keyframe per shot, and a description of the shot.

A cut is a large change between consecutive sampled frames (colour histograms); shots longer than
`max_shot_seconds` are split at fixed intervals, so a static two-hour stream still gets keyframes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from mediasift.extraction.layers.rows import Row

EXTRACTOR = "scenes-histogram@1"


@dataclass
class Shot:
    number: int
    t_start: float
    t_end: float
    keyframe: Image.Image
    keyframe_t: float


def _signature(image: Image.Image) -> np.ndarray:
    small = np.asarray(image.convert("RGB").resize((64, 36)), dtype=np.float32)
    hist = [np.histogram(small[..., c], bins=16, range=(0, 255))[0] for c in range(3)]
    flat = np.concatenate(hist).astype(np.float32)
    return flat / flat.sum()


def detect_shots(frames: Iterable[tuple[float, Image.Image]], *, threshold: float = 0.35,
                 max_shot_seconds: float = 30.0) -> Iterator[Shot]:
    """Shots as they close; memory holds only the current shot's candidate keyframes."""
    number, start, last_t, previous = 1, None, 0.0, None
    candidates: list[tuple[float, Image.Image]] = []

    def close(end: float) -> Shot:
        middle = (start + end) / 2
        t, image = min(candidates, key=lambda c: abs(c[0] - middle))
        return Shot(number, start, end, image, t)

    for t, image in frames:
        signature = _signature(image)
        if start is None:
            start = t
        elif np.abs(signature - previous).sum() / 2 > threshold or t - start >= max_shot_seconds:
            yield close(t)
            number, start, candidates = number + 1, t, []
        if not candidates or t - candidates[-1][0] >= 1.0:
            candidates.append((t, image))
        previous, last_t = signature, t
    if start is not None:
        yield close(last_t + 0.25)


def describe(shot: Shot, on_screen: list[str], faces: int) -> str:
    parts = [f"Shot {shot.number} ({shot.t_start:.1f}-{shot.t_end:.1f} s)."]
    if on_screen:
        parts.append("On-screen text: " + " / ".join(on_screen) + ".")
    if faces:
        parts.append(f"{faces} face{'s' if faces > 1 else ''} visible.")
    return " ".join(parts)


def scene_row(shot: Shot, on_screen: list[str], faces: list[tuple[int, int, int, int]]) -> Row:
    return Row("scenes", "video", "shot", describe(shot, on_screen, len(faces)), shot.t_start, shot.t_end,
               extra={"shot": shot.number, "keyframe_t": round(shot.keyframe_t, 3), "ocr_text": " ".join(on_screen),
                      "faces": len(faces)})
