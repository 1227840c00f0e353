"""Model loading: each model is loaded at most once per process, on first use, and reused.

`Models` is what layers receive. Its `load_counts` exist so tests and benchmarks can prove that no model
is loaded per object.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from functools import cached_property

from mediasift.config import SECRET_FIELDS, Settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
log = logging.getLogger(__name__)
_lock = threading.Lock()
_shared: dict[tuple, Models] = {}


class Models:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.load_counts: Counter[str] = Counter()

    def _load(self, name: str, load):
        self.load_counts[name] += 1
        log.info("model_load name=%s", name)
        return load()

    @cached_property
    def whisper(self):
        from mediasift.extraction.models.whisper import load_whisper

        return self._load("whisper", lambda: load_whisper(self.settings.whisper_model, self.settings.device))

    @cached_property
    def text(self):
        from mediasift.extraction.models.text import TextEncoder

        return self._load("text", TextEncoder)

    @cached_property
    def ner(self):
        from mediasift.extraction.models.ner import load_ner

        return self._load("ner", load_ner)

    @cached_property
    def ocr(self):
        from mediasift.extraction.models.ocr import Ocr

        return self._load("ocr", Ocr)

    @cached_property
    def faces(self):
        from mediasift.extraction.models.faces import FaceDetector

        return self._load("faces", FaceDetector)

    @cached_property
    def imagenet(self):
        from mediasift.extraction.models.imagenet import ImageNetModel

        return self._load("imagenet", lambda: ImageNetModel(self.settings.visual_weights, self.settings.device))

    @cached_property
    def clip(self):
        from mediasift.extraction.models.clip import load_clip

        s = self.settings
        return self._load("clip", lambda: load_clip(s.clip_model, s.clip_pretrained, s.clip_checkpoint, s.device))

    @property
    def visual_clip(self):
        """The CLIP that visual rows and text→image search use: only one whose weights are configured (so
        the pipeline never makes random CLIP vectors by default); None otherwise."""
        from mediasift.extraction.models.clip import configured_name

        s = self.settings
        return self.clip if configured_name(s.clip_model, s.clip_pretrained, s.clip_checkpoint) else None


def models_for(settings: Settings) -> Models:
    """The process-wide Models for these model settings (so every run in a worker shares them)."""
    key = settings.model_dump_json(exclude=set(SECRET_FIELDS))
    with _lock:
        if key not in _shared:
            _shared[key] = Models(settings)
        return _shared[key]
