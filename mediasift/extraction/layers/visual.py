"""Visual: what each image, shot keyframe and PDF page image shows. One row per picture, carrying the
trained feature vector (EfficientNet-Lite0, 1280-d: what duplicates, clusters and anomaly scores use)
and its top ImageNet classes, as `tags` and as searchable words."""

from __future__ import annotations

from PIL import Image

from mediasift.extraction.layers.rows import Row
from mediasift.extraction.models.imagenet import NAME, Tag

EXTRACTOR = NAME
WORDS_MIN_SCORE = 0.05
"""Tags below this probability stay in `tags` but are not searchable words."""
OBJECT_MIN_SCORE = 0.3
"""A tag this sure also becomes an OBJECT entity."""


def visual_rows(images: list[Image.Image], template: list[Row], model) -> list[Row]:
    """See `images` in one batch; `template[i]` carries where image i sits (time or page) and its
    on-screen text (kept as `ocr_text`), to which the tag words are prepended."""
    for row, seen in zip(template, model.see(images), strict=True):
        row.vector = seen.vector
        row.extra["tags"] = [{"label": t.label, "score": t.score} for t in seen.tags]
        row.extra["ocr_text"] = row.text
        row.text = " ".join(part for part in (tag_words(seen.tags), row.text) if part)
    return template


def tag_words(tags: list[Tag]) -> str:
    """The searchable names of the likely classes ("tiger cat; Egyptian cat; tabby, tabby cat.")."""
    likely = [t for t in tags if t.score >= WORDS_MIN_SCORE]
    return "; ".join(t.words for t in likely) + "." if likely else ""


def strong_labels(row: Row) -> list[str]:
    """The tags of a visual row sure enough to name in a scene description or as an entity."""
    return [t["label"] for t in row.extra.get("tags", []) if t["score"] >= OBJECT_MIN_SCORE]


def visual_row(modality: str, kind: str, text: str, *, t_start: float | None = None, t_end: float | None = None,
               page: int | None = None) -> Row:
    return Row("visual", modality, kind, text, t_start, t_end, page)
