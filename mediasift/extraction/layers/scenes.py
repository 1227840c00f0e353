"""Scenes: shot boundaries from decoded frames, a keyframe per shot, and a description of the shot.

Cuts come from PySceneDetect's `ContentDetector` (its `detect-content` algorithm): the mean change in
hue, saturation and brightness, pixel by pixel, between consecutive sampled frames, each downscaled to
about 256 px as PySceneDetect's own SceneManager does. Unlike a luma histogram, it also sees a cut
between two equally bright shots of different colour. The detector is fed one frame at a time, so a
shot is yielded as soon as the next one starts. Shots longer than `max_shot_seconds` are split at fixed
intervals, so a static two-hour stream still gets keyframes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image
from scenedetect.detectors import ContentDetector
from scenedetect.scene_detector import FlashFilter
from scenedetect.scene_manager import compute_downscale_factor

from mediasift.extraction.layers.rows import Row

EXTRACTOR = "scenes-pyscenedetect@2"
MIN_SHOT_SECONDS = 1.0
"""After a cut, further cuts are ignored this long (camera flashes, fast pans between samples)."""
TICKS_PER_SECOND = 100
"""PySceneDetect counts frames; frames are numbered by their time in these ticks, so its minimum shot
length holds in seconds whatever rate the frames were sampled at."""


@dataclass
class Shot:
    number: int
    t_start: float
    t_end: float
    keyframe: Image.Image
    keyframe_t: float


def _bgr(image: Image.Image) -> np.ndarray:
    """The frame as PySceneDetect expects it: 8-bit BGR, downscaled the way its SceneManager does."""
    rgb = image.convert("RGB")
    factor = compute_downscale_factor(max(rgb.size))
    if factor > 1:
        size = (max(1, round(rgb.width / factor)), max(1, round(rgb.height / factor)))
        rgb = rgb.resize(size, Image.Resampling.BILINEAR)
    return cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2BGR)


def detect_shots(frames: Iterable[tuple[float, Image.Image]], *, threshold: float = 27.0,
                 max_shot_seconds: float = 30.0) -> Iterator[Shot]:
    """Shots as they close; memory holds only the current shot's candidate keyframes.

    `threshold` is ContentDetector's score (mean HSV change, 0-255) at which a frame starts a new shot;
    27 is PySceneDetect's default. The flash filter suppresses rather than merges, so a cut is reported
    on the frame that shows it and never later, which a shot yielded as it closes needs.
    """
    detector = ContentDetector(threshold=threshold, min_scene_len=round(MIN_SHOT_SECONDS * TICKS_PER_SECOND),
                               filter_mode=FlashFilter.Mode.SUPPRESS)
    number, start, last_t = 1, None, 0.0
    candidates: list[tuple[float, Image.Image]] = []

    def close(end: float) -> Shot:
        middle = (start + end) / 2
        t, image = min(candidates, key=lambda c: abs(c[0] - middle))
        return Shot(number, start, end, image, t)

    for t, image in frames:
        cut = bool(detector.process_frame(round(max(t, 0.0) * TICKS_PER_SECOND), _bgr(image)))
        if start is None:
            start = t
        elif cut or t - start >= max_shot_seconds:
            yield close(t)
            number, start, candidates = number + 1, t, []
        if not candidates or t - candidates[-1][0] >= 1.0:
            candidates.append((t, image))
        last_t = t
    if start is not None:
        yield close(last_t + 0.25)


def describe(shot: Shot, on_screen: list[str], faces: int, seen: list[str]) -> str:
    """"Shot 2 (4.0-8.0 s): golf ball, tee. On-screen text: … 1 face visible." """
    parts = [f"Shot {shot.number} ({shot.t_start:.1f}-{shot.t_end:.1f} s)" + (f": {', '.join(seen)}." if seen else ".")]
    if on_screen:
        parts.append("On-screen text: " + " / ".join(on_screen) + ".")
    if faces:
        parts.append(f"{faces} face{'s' if faces > 1 else ''} visible.")
    return " ".join(parts)


def scene_row(shot: Shot, on_screen: list[str], faces: list[tuple[int, int, int, int]],
              seen: list[str] | None = None) -> Row:
    """`seen`: what the visual model is sure the keyframe shows."""
    seen = seen or []
    return Row("scenes", "video", "shot", describe(shot, on_screen, len(faces), seen), shot.t_start, shot.t_end,
               extra={"shot": shot.number, "keyframe_t": round(shot.keyframe_t, 3), "ocr_text": " ".join(on_screen),
                      "faces": len(faces), "seen": seen})
