"""Face detection with OpenCV's Haar cascade (shipped in opencv-python-headless < 5)."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image


class FaceDetector:
    def __init__(self):
        self.cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        if self.cascade.empty():
            raise RuntimeError("OpenCV Haar cascade not found (needs opencv-python-headless<5)")

    def detect(self, image: Image.Image) -> list[tuple[int, int, int, int]]:
        gray = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2GRAY)
        found = self.cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=6, minSize=(40, 40))
        return [tuple(int(v) for v in box) for box in found]
