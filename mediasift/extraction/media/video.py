"""Video frames with PyAV, sampled at a fixed rate and decoded as a stream."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
from PIL import Image

from mediasift.errors import MediaError


def iter_frames(path: Path, fps: float = 4.0, max_side: int = 960) -> Iterator[tuple[float, Image.Image]]:
    """(timestamp in seconds, RGB frame) every 1/fps seconds of the first video track."""
    step = 1.0 / fps
    next_t = 0.0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError("no video track")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                t = float(frame.pts * stream.time_base)
                if t + 1e-6 < next_t:
                    continue
                next_t = t + step
                image = frame.to_image()
                image.thumbnail((max_side, max_side))
                yield t, image
    except av.error.FFmpegError as error:
        raise MediaError(f"cannot decode video: {error}") from error

