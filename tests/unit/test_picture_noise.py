"""What a picture yields stays signal: no faces where there are none, no bare numbers as entities."""

import pytest

from mediasift.extraction.layers.entities import entity_rows
from mediasift.extraction.layers.rows import Row
from mediasift.extraction.media.video import iter_frames
from mediasift.extraction.models.faces import FaceDetector
from mediasift.extraction.models.ner import load_ner
from mediasift.local.samples import photo, write_photo_video

FACES = {"astronaut": 1, "chelsea": 0, "coffee": 0, "rocket": 0, "motorcycle_left": 0, "horse": 0, "coins": 0,
         "retina": 0, "moon": 0, "brick": 0, "grass": 0, "page": 0}
"""scikit-image's bundled photos and how many frontal faces each shows."""


@pytest.fixture(scope="module")
def faces() -> FaceDetector:
    return FaceDetector()


@pytest.mark.parametrize("name", sorted(FACES))
def test_faces_are_found_where_there_are_faces_and_nowhere_else(faces, name):
    assert len(faces.detect(photo(name))) == FACES[name]


def test_the_frames_of_a_video_of_faceless_photos_show_no_face(faces, tmp_path):
    write_photo_video(tmp_path / "shots.mp4", ["chelsea", "coffee"])
    assert [t for t, frame in iter_frames(tmp_path / "shots.mp4", fps=2.0) if faces.detect(frame)] == []


def test_numbers_read_off_a_label_stay_out_of_the_entities():
    label = Row("visual", "image", "image", extra={"ocr_text": "Gutermann 100% polyester 500 m 274 Maria Santos 30"})
    found = {(r.text, r.label) for r in entity_rows([label], load_ner())}
    assert all(any(ch.isalpha() for ch in text) for text, _ in found), found
    assert ("Maria Santos", "PERSON") in found
