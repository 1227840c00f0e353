"""Visual: one embedding per image, per shot keyframe, per PDF page image."""

from __future__ import annotations

from PIL import Image

from mediasift.extraction.layers.rows import Row


def visual_rows(images: list[Image.Image], template: list[Row], clip) -> list[Row]:
    """Embed `images` in one batch; `template[i]` carries where image i sits (time or page, text)."""
    vectors = clip.embed_images(images)
    for row, vector in zip(template, vectors, strict=True):
        row.vector = vector
        row.extra["untrained"] = clip.untrained
    return template


def visual_row(modality: str, kind: str, text: str, *, t_start: float | None = None, t_end: float | None = None,
               page: int | None = None) -> Row:
    return Row("visual", modality, kind, text, t_start, t_end, page)
