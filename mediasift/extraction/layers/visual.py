"""Visual: what each image, shot keyframe and PDF page image shows. One row per picture, carrying the
trained feature vector (EfficientNet-Lite0, 1280-d: what duplicates, clusters and anomaly scores use)
and its top ImageNet classes, as `tags` and as searchable words; and, when CLIP weights are configured, a
CLIP image vector (`clip_vector`: what text→image search compares a query's CLIP text vector to)."""

from __future__ import annotations

from PIL import Image

from mediasift.extraction.layers.rows import Row
from mediasift.extraction.models.clip import Clip
from mediasift.extraction.models.imagenet import NAME, Tag

EXTRACTOR = NAME
WORDS_MIN_SCORE = 0.05
"""Tags below this probability stay in `tags` but are not searchable words."""
OBJECT_MIN_SCORE = 0.3
"""A tag this sure also becomes an OBJECT entity."""


def visual_rows(images: list[Image.Image], template: list[Row], model, clip: Clip | None = None) -> list[Row]:
    """See `images` in one batch (with `clip` too, when given); `template[i]` carries where image i sits
    (time or page) and its on-screen text (kept as `ocr_text`), to which the tag words are prepended."""
    clip_vectors = list(clip.embed_images(images)) if clip is not None else [None] * len(images)
    for row, seen, clip_vector in zip(template, model.see(images), clip_vectors, strict=True):
        row.vector = seen.vector
        row.clip_vector = clip_vector
        row.extra["tags"] = [{"label": t.label, "score": t.score} for t in seen.tags]
        row.extra["ocr_text"] = row.text
        row.text = " ".join(part for part in (tag_words(seen.tags), row.text) if part)
    return template


def extractor(clip_name: str | None = None) -> str:
    """The visual rows' extractor: the tagger, and the CLIP that made their `clip_vector` when there is one
    (`efficientnet-lite0@imagenet+clip:ViT-B-32@laion2b_s34b_b79k`)."""
    return EXTRACTOR if clip_name is None else f"{EXTRACTOR}+clip:{clip_name}"


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
