"""OCR with RapidOCR (PP-OCR ONNX models bundled in the wheel)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from PIL import Image

NAME = "rapidocr"


@dataclass(frozen=True)
class OcrLine:
    text: str
    score: float


class Ocr:
    name = NAME

    def __init__(self, min_score: float = 0.5):
        from rapidocr import RapidOCR

        logging.getLogger("RapidOCR").setLevel(logging.WARNING)
        self.engine = RapidOCR()
        self.min_score = min_score

    def read(self, image: Image.Image) -> list[OcrLine]:
        result = self.engine(np.asarray(image.convert("RGB")))
        if not result.txts:
            return []
        return [OcrLine(t, float(s)) for t, s in zip(result.txts, result.scores, strict=True) if s >= self.min_score]
