"""Which layers an object gets, and in what order: one decode pass per stream, shared by the layers
that need it (a video's keyframes feed scenes, visual and faces; a PDF page image feeds OCR and visual).

Everything is computed before anything is written, so a corrupt file fails with no partial rows.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from mediasift.analysis.duplicates import perceptual_hash
from mediasift.analysis.objects import ObjectSummary
from mediasift.errors import MediaError
from mediasift.extraction.layers import entities, pages, scenes, transcript, visual
from mediasift.extraction.layers.rows import LAYERS, Row
from mediasift.extraction.media import Modality, modality_of, refusal
from mediasift.extraction.media.audio import has_audio
from mediasift.extraction.media.image import load_image
from mediasift.extraction.media.pdf import iter_pages
from mediasift.extraction.media.video import iter_frames
from mediasift.extraction.models import Models
from mediasift.identity import ObjectVersion
from mediasift.store.s3 import Fetched

log = logging.getLogger(__name__)
VISUAL_BATCH = 16


@dataclass
class Extraction:
    """What a worker made of one object version (a copy of it, when it comes back from a Ray actor): the
    content facts of the bytes it read and every layer's rows; or why there is nothing to extract."""

    version: ObjectVersion
    fetched: Fetched | None = None
    modality: Modality = Modality.OTHER
    rows: dict[str, list[Row]] = field(default_factory=lambda: {layer: [] for layer in LAYERS})
    extractors: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    superseded: str | None = None
    """Set when the notified version could no longer be read (overwritten since)."""
    unsupported: str | None = None
    """Set when no layer takes the bytes: why (`unsupported: text/plain`, or what contradicts the key)."""
    error: str | None = None
    permanent: bool = False
    """The error is in the bytes (corrupt media): no retry can fix it."""
    summary: ObjectSummary = field(default_factory=ObjectSummary)
    """The object as a whole, for the object table its run writes."""

    def add(self, rows: list[Row]) -> None:
        for row in rows:
            self.rows[row.layer].append(row)


class _Timer:
    def __init__(self, extraction: Extraction, layer: str):
        self.extraction, self.layer = extraction, layer

    def __enter__(self):
        self.started = time.perf_counter()

    def __exit__(self, *exc):
        spent = time.perf_counter() - self.started
        self.extraction.seconds[self.layer] = self.extraction.seconds.get(self.layer, 0.0) + spent


def extract(path: Path, version: ObjectVersion, fetched: Fetched, models: Models) -> Extraction:
    """All layers of one object version read to `path`. Raises MediaError naming the object when it cannot
    be decoded."""
    content_type = fetched.content_type
    modality = modality_of(content_type)
    result = Extraction(version, fetched, modality, unsupported=refusal(version.key, content_type, fetched.size))
    if result.unsupported:
        return result
    try:
        if modality is Modality.AUDIO:
            _transcript(path, result, models)
        elif modality is Modality.VIDEO:
            if has_audio(path):
                _transcript(path, result, models)
            _video_frames(path, result, models)
        elif modality is Modality.IMAGE:
            _image(path, result, models)
        elif modality is Modality.PDF:
            _pdf(path, result, models)
    except MediaError as error:
        raise MediaError(f"{version.uri} (etag {version.etag}, {content_type}): {error}") from error
    sources = [r for rows in result.rows.values() for r in rows if entities.is_source(r)]
    if sources:
        with _Timer(result, "entities"):
            result.add(entities.entity_rows(sources, models.ner))
    if result.rows["entities"]:
        result.extractors["entities"] = entities.EXTRACTOR
    with _Timer(result, "text_embeddings"):
        _embed_text(result, models)
    _summarise(result)
    return result


def _transcript(path: Path, result: Extraction, models: Models) -> None:
    with _Timer(result, "transcript"):
        result.add(transcript.transcribe(path, models.whisper, result.modality.value))
    result.extractors["transcript"] = transcript.EXTRACTOR


@dataclass
class _Picture:
    """A picture waiting for the batched visual model, with where it sits; a keyframe also carries what
    its scene row needs, since the scene description names what the model saw."""

    image: Image.Image
    row: Row
    shot: scenes.Shot | None = None
    on_screen: list[str] = field(default_factory=list)
    faces: list = field(default_factory=list)


def _video_frames(path: Path, result: Extraction, models: Models) -> None:
    """One decode of the frames: shots → OCR, faces, what the keyframe shows, and the scene description."""
    pending: list[_Picture] = []
    visual_before = result.seconds.get("visual", 0.0)
    with _Timer(result, "scenes"):
        for shot in scenes.detect_shots(iter_frames(path, fps=4.0)):
            on_screen = [line.text for line in models.ocr.read(shot.keyframe)]
            faces = models.faces.detect(shot.keyframe)
            if faces:
                result.add([entities.face_row("video", faces, t_start=shot.t_start, t_end=shot.t_end)])
            row = visual.visual_row("video", "shot", " ".join(on_screen), t_start=shot.t_start, t_end=shot.t_end)
            pending.append(_Picture(shot.keyframe, row, shot, on_screen, faces))
            if len(pending) >= VISUAL_BATCH:
                _flush_visual(pending, result, models)
        _flush_visual(pending, result, models)
    result.seconds["scenes"] -= result.seconds.get("visual", 0.0) - visual_before
    result.extractors["scenes"] = f"{scenes.EXTRACTOR}+{models.ocr.name}+{visual.EXTRACTOR}"


def _image(path: Path, result: Extraction, models: Models) -> None:
    image = load_image(path)
    result.summary.phash = perceptual_hash(image)
    with _Timer(result, "visual"):
        on_screen = [line.text for line in models.ocr.read(image)]
        faces = models.faces.detect(image)
    if faces:
        result.add([entities.face_row("image", faces)])
    _flush_visual([_Picture(image, visual.visual_row("image", "image", " ".join(on_screen)))], result, models)


def _pdf(path: Path, result: Extraction, models: Models) -> None:
    pending: list[_Picture] = []
    with _Timer(result, "pages"):
        for page in iter_pages(path):
            row = pages.page_row(page, models.ocr)
            result.add([row])
            pending.append(_Picture(page.image.resize((page.image.width // 2, page.image.height // 2)),
                                    visual.visual_row("pdf", "page", row.text[:200], page=page.number)))
            if len(pending) >= VISUAL_BATCH:
                _flush_visual(pending, result, models)
    _flush_visual(pending, result, models)
    result.extractors["pages"] = f"pypdfium2+{models.ocr.name}"


def _flush_visual(pending: list[_Picture], result: Extraction, models: Models) -> None:
    """The visual rows of a batch of pictures; then what they show goes into scene rows and entities."""
    if not pending:
        return
    with _Timer(result, "visual"):
        clip = models.visual_clip
        rows = visual.visual_rows([p.image for p in pending], [p.row for p in pending], models.imagenet, clip)
    result.add(rows)
    for picture in pending:
        seen = visual.strong_labels(picture.row)
        if picture.shot is not None:
            result.add([scenes.scene_row(picture.shot, picture.on_screen, picture.faces, seen)])
        result.add([entities.object_row(picture.row, label) for label in seen])
    result.extractors["visual"] = visual.extractor(clip.name if clip else None)
    pending.clear()


def _embed_text(result: Extraction, models: Models) -> None:
    """MiniLM vectors for every searchable text row. Visual rows keep their image feature: they are found
    by their words (full text) instead."""
    rows = [r for layer in LAYERS if layer != "visual" for r in result.rows[layer] if r.indexed]
    if not rows:
        return
    for row, vector in zip(rows, models.text.embed([r.text for r in rows]), strict=True):
        row.vector = vector


def _summarise(result: Extraction) -> None:
    """The object-level view (DESIGN §6): the mean of its picture features, the mean of its words' vectors,
    its words, its tags (most likely first) and its entities."""
    summary, rows = result.summary, result.rows
    summary.visual = _mean_direction([r.vector for r in rows["visual"] if r.vector is not None])
    words = [r for layer in ("transcript", "pages", "scenes") for r in rows[layer] if r.indexed]
    summary.text_vector = _mean_direction([r.vector for r in words if r.vector is not None])
    summary.text = "\n".join(r.text for r in words if r.text)
    scores: dict[str, float] = {}
    for row in rows["visual"]:
        for tag in row.extra.get("tags", []):
            scores[tag["label"]] = max(scores.get(tag["label"], 0.0), tag["score"])
    summary.tags = sorted(scores, key=lambda label: -scores[label])
    summary.entities = [(r.label or "", r.text) for r in rows["entities"]]


def _mean_direction(vectors: list[np.ndarray]) -> np.ndarray | None:
    if not vectors:
        return None
    mean = np.mean(np.stack(vectors).astype(np.float32), axis=0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else None
