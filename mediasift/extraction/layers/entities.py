"""Entities: named entities in transcript, page and on-screen text (with where they occur), and faces."""

from __future__ import annotations

from mediasift.extraction.layers.rows import Row

EXTRACTOR = "spacy:en_core_web_sm@3.8+opencv-haar+efficientnet-lite0@imagenet"
SOURCES = {("transcript", "sentence"), ("pages", "page"), ("scenes", "shot"), ("visual", "image")}


def is_source(row: Row) -> bool:
    """Rows whose text may name entities: transcript sentences, pages, on-screen and image text."""
    return (row.layer, row.kind) in SOURCES and bool(_source_text(row))


def entity_rows(rows: list[Row], nlp) -> list[Row]:
    found: list[Row] = []
    sources = [r for r in rows if is_source(r)]
    for row, doc in zip(sources, nlp.pipe(_source_text(r) for r in sources), strict=True):
        for ent in doc.ents:
            if not any(ch.isalpha() for ch in ent.text):  # bare numbers stay in the OCR text, not here
                continue
            found.append(Row("entities", row.modality, "entity", ent.text, row.t_start, row.t_end, row.page,
                             label=ent.label_, extra={"source_layer": row.layer}))
    return found


def _source_text(row: Row) -> str:
    """What a person could have written: on-screen text of shots and pictures (not the model's tags)."""
    return row.extra.get("ocr_text", "") if row.layer in ("scenes", "visual") else row.text


def object_row(picture: Row, label: str) -> Row:
    """What the visual model is sure a picture shows, where it shows it."""
    return Row("entities", picture.modality, "object", label, picture.t_start, picture.t_end, picture.page,
               label="OBJECT", extra={"source_layer": "visual"})


def face_row(modality: str, boxes: list[tuple[int, int, int, int]], *, t_start: float | None = None,
             t_end: float | None = None, page: int | None = None) -> Row:
    return Row("entities", modality, "faces", f"{len(boxes)} face{'s' if len(boxes) != 1 else ''}", t_start,
               t_end, page, label="FACE", extra={"count": len(boxes), "boxes": [list(b) for b in boxes]})
