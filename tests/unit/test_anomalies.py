"""Anomaly scores on pictures whose truth is built here. Only about fifteen real photos ship with
scikit-image, so the normal distribution is ten of them seen through random crops, recompression and
exposure changes; unseen normal objects are new crops of the same photos. Out-of-distribution objects are
text screenshots drawn with PIL, uniform noise and flat single-colour frames. Run with -s for the AUROC."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance
from sklearn.metrics import roc_auc_score

from mediasift.analysis.anomalies import (
    AnomalyReference,
    anomalies_json,
    latest,
    rescore,
    score_arrival,
)
from mediasift.analysis.reference import IndexSettings, ObjectRef
from mediasift.identity import ObjectVersion
from mediasift.local.samples import font, photo
from mediasift.local.synthetic import embedding_like_vectors

PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "camera", "motorcycle_left", "coins", "hubble_deep_field",
          "moon", "retina"]
REFERENCE_VIEWS, UNSEEN_VIEWS = 8, 2
AUROC_FLOOR = 0.95
DISTANCE_AUROC_FLOOR = 0.99
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _view(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A random crop (50-90% of each side), re-encoded as JPEG q50-95 with exposure ×0.8-1.2."""
    w, h = image.size
    cw, ch = (int(s * rng.uniform(0.5, 0.9)) for s in (w, h))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    crop = ImageEnhance.Brightness(image.crop((x, y, x + cw, y + ch))).enhance(rng.uniform(0.8, 1.2))
    out = io.BytesIO()
    crop.save(out, "JPEG", quality=int(rng.integers(50, 96)))
    return Image.open(out).convert("RGB")


def _screenshot(rng: np.random.Generator) -> Image.Image:
    image = Image.new("RGB", (640, 400), tuple(int(c) for c in rng.integers(200, 256, 3)))
    draw = ImageDraw.Draw(image)
    size = int(rng.integers(16, 32))
    words = ["invoice", "total", "meeting", "agenda", "revenue", "quarter", "budget", "approved", "page", "notes"]
    for line in range(0, 380, size + 8):
        text = " ".join(words[i] for i in rng.integers(0, len(words), 6))
        draw.text((20, 10 + line), text, fill=(20, 20, 20), font=font(size))
    return image


def _noise(rng: np.random.Generator) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))


def _flat(rng: np.random.Generator) -> Image.Image:
    return Image.new("RGB", (400, 300), tuple(int(c) for c in rng.integers(0, 256, 3)))


def _ref(name: str) -> ObjectRef:
    return ObjectRef.of(ObjectVersion("media", name, hashlib.md5(name.encode()).hexdigest()))


@pytest.fixture(scope="module")
def embedded() -> dict[str, list[tuple[ObjectRef, np.ndarray]]]:
    """Reference, unseen normal and out-of-distribution objects, embedded by the trained model (loaded once)."""
    from mediasift.extraction.models.imagenet import ImageNetModel

    rng = np.random.default_rng(0)
    sets: dict[str, list[tuple[str, Image.Image]]] = {"reference": [], "normal": [], "outlier": []}
    for name in PHOTOS:
        image = photo(name)
        sets["reference"] += [(f"{name}/view{i}.jpg", _view(image, rng)) for i in range(REFERENCE_VIEWS)]
        sets["normal"] += [(f"{name}/unseen{i}.jpg", _view(image, rng)) for i in range(UNSEEN_VIEWS)]
    for kind, make, count in (("screenshot", _screenshot, 8), ("noise", _noise, 6), ("flat", _flat, 6)):
        sets["outlier"] += [(f"{kind}{i}.png", make(rng)) for i in range(count)]
    model = ImageNetModel()
    return {part: [(_ref(n), s.vector) for (n, _), s in zip(items, model.see([im for _, im in items]), strict=True)]
            for part, items in sets.items()}


def _reference(embedded, k: int = 5) -> AnomalyReference:
    refs, vectors = zip(*embedded["reference"], strict=True)
    return AnomalyReference(refs, np.stack(vectors), k=k)


def test_out_of_distribution_objects_are_flagged_at_arrival_and_unseen_normal_ones_are_not(embedded):
    """Every outlier lies beyond the farthest reference row. An unseen normal crop does so by chance
    (1 in 81 against 80 reference rows, when it shows a part of its photo no reference crop showed): here
    2 of 20 do, at distances 0.22 and 0.26 against outliers from 0.51, so at most 2 may be flagged."""
    reference = _reference(embedded)
    rows = {part: [score_arrival(reference, ref, v, at=T0) for ref, v in embedded[part]]
            for part in ("normal", "outlier")}
    scored = rows["normal"] + rows["outlier"]
    labels = [0] * len(rows["normal"]) + [1] * len(rows["outlier"])
    auroc = roc_auc_score(labels, [r.score for r in scored])
    distance_auroc = roc_auc_score(labels, [r.distance for r in scored])
    flagged = {part: sum(r.flagged for r in part_rows) for part, part_rows in rows.items()}
    print(f"\nAUROC {auroc:.3f} on the score (percentiles saturate at 1.0), {distance_auroc:.3f} on the kNN "
          f"distance; flagged at 0.99: {flagged['outlier']}/{len(rows['outlier'])} outliers, "
          f"{flagged['normal']}/{len(rows['normal'])} unseen normal")
    print(f"distances: unseen normal up to {max(r.distance for r in rows['normal']):.3f}, outliers from "
          f"{min(r.distance for r in rows['outlier']):.3f}, the reference's own up to {reference.own.max():.3f}")
    assert auroc >= AUROC_FLOOR and distance_auroc >= DISTANCE_AUROC_FLOOR
    assert flagged["outlier"] == len(rows["outlier"])
    assert flagged["normal"] <= 2


def test_a_stored_score_does_not_move_when_more_objects_arrive(embedded):
    reference = _reference(embedded)
    watched_ref, watched_vector = embedded["normal"][0]
    history = [score_arrival(reference, watched_ref, watched_vector, at=T0)]
    kept = history[0]
    history += [score_arrival(reference, ref, v, at=T0 + timedelta(minutes=1)) for ref, v in embedded["outlier"]]
    everything = embedded["reference"] + embedded["normal"] + embedded["outlier"]
    refs, vectors = zip(*everything, strict=True)
    _, rescored = rescore(refs, np.stack(vectors), at=T0 + timedelta(hours=1))
    history += rescored
    watched = [r for r in history if r.ref == watched_ref]
    assert watched[0] == kept and watched[0].scored_at == T0 and watched[0].reference_size == len(reference)
    assert len(watched) == 2 and watched[1].reference_size == len(everything)
    assert [r for r in latest(history) if r.ref == watched_ref] == [watched[1]]


def test_a_rescore_ranks_every_object_against_the_others(embedded):
    """Leave-one-out: nobody is its own neighbour, so the scores are the ranks of the distances, and the
    single screenshot among the photos comes out on top."""
    screenshot = embedded["outlier"][0]
    refs, vectors = zip(*embedded["reference"], screenshot, strict=True)
    reference, rows = rescore(refs, np.stack(vectors), at=T0)
    n = len(rows)
    assert sorted(r.score for r in rows) == pytest.approx([i / n for i in range(n)])
    assert max(rows, key=lambda r: r.score).ref == screenshot[0]
    again = score_arrival(reference, screenshot[0], screenshot[1], at=T0)
    assert again.score == pytest.approx(rows[-1].score) and again.distance == pytest.approx(rows[-1].distance)


def test_without_a_reference_an_object_gets_no_score():
    row = score_arrival(None, _ref("first.jpg"), np.ones(4) / 2, at=T0)
    assert (row.score, row.flagged, row.reference_size) == (None, False, 0)
    with pytest.raises(ValueError, match="more than k=5"):
        AnomalyReference([_ref("a"), _ref("b")], np.eye(2))


def test_anomalies_json_lists_the_newest_flagged_rows_highest_first(embedded):
    reference = _reference(embedded)
    old = [score_arrival(reference, ref, v, at=T0) for ref, v in embedded["normal"] + embedded["outlier"]]
    document = anomalies_json(old, threshold=0.99)
    scores = [o["score"] for o in document["objects"]]
    assert document["threshold"] == 0.99 and scores == sorted(scores, reverse=True)
    assert all(o["flagged"] and o["score"] > 0.99 for o in document["objects"])
    assert set(document["objects"][0]) == {"bucket", "key", "etag", "object_id", "score", "flagged", "scored_at"}
    everything = anomalies_json(old, threshold=0.99, include_all=True)["objects"]
    assert len(everything) == len(old) and {o["flagged"] for o in everything} == {True, False}
    assert datetime.fromisoformat(everything[0]["scored_at"]) == T0


def test_scores_through_the_inverted_file_match_exact_search():
    """A reference past `ivf_from` rows is searched approximately (here projected from 64 to 32
    dimensions); its percentiles stay near the exact ones."""
    vectors = embedding_like_vectors(3000, 64, seed=5, clusters=30)
    queries = embedding_like_vectors(300, 64, seed=6, clusters=30)
    refs = [_ref(f"r{i}") for i in range(len(vectors))]
    approximate = AnomalyReference(refs, vectors, settings=IndexSettings(ivf_from=1000, reduced_dim=32, nprobe=8))
    exact = AnomalyReference(refs, vectors, settings=IndexSettings(ivf_from=10**9))
    difference = np.abs(approximate.percentile(approximate.distances(queries))
                        - exact.percentile(exact.distances(queries)))
    assert difference.mean() < 0.01 and difference.max() < 0.05
