"""Anomaly scores: how far an object lies from the reference set, as a percentile of the reference's own
distances, so that 0.99 reads "farther from its neighbours than 99% of the reference is from theirs" in
any embedding space and at any reference size.

The distance is the mean cosine distance to the k nearest reference features (k = 5 by default; the
mean, not the k-th, is steadier on small references). The reference's own distances are leave-one-out:
each row's neighbours exclude itself. An object is scored once when it arrives, against the reference
as of the last rescore, and that row is kept: objects arriving later do not move it. `rescore` rebuilds
the reference from every current object and returns new rows stamped with their time; older rows stay,
so the table of rows is the history.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from mediasift.analysis.reference import IndexSettings, ObjectRef, VectorIndex

K = 5
THRESHOLD = 0.99
QUERY_BLOCK = 8192
"""Queries per batched search, to bound the candidate arrays of the inverted file."""


@dataclass(frozen=True)
class AnomalyScore:
    ref: ObjectRef
    score: float | None
    """Fraction of the reference that lies closer to its own neighbours; None without a reference."""
    distance: float | None
    flagged: bool
    scored_at: datetime
    reference_size: int
    k: int

    def over(self, threshold: float) -> bool:
        return self.score is not None and self.score > threshold

    def as_json(self, threshold: float | None = None) -> dict:
        flagged = self.flagged if threshold is None else self.over(threshold)
        return {**self.ref.as_json(), "score": self.score, "flagged": flagged, "scored_at": self.scored_at.isoformat()}


class AnomalyReference:
    """The features scores are measured against, with their leave-one-out kNN distances."""

    def __init__(self, refs: Sequence[ObjectRef], vectors: np.ndarray, k: int = K,
                 settings: IndexSettings | None = None):
        vectors = np.asarray(vectors, dtype=np.float32)
        if len(refs) != len(vectors) or len(refs) <= k:
            raise ValueError(f"an anomaly reference needs more than k={k} rows, one per object "
                             f"(got {len(refs)} objects, {len(vectors)} vectors)")
        self.refs, self.k = list(refs), k
        self._position = {ref: i for i, ref in enumerate(self.refs)}
        self._index = VectorIndex(vectors.shape[1], settings)
        self._index.add(vectors)
        self.own = self.distances(vectors, np.arange(len(vectors)))
        self._sorted = np.sort(self.own)

    def __len__(self) -> int:
        return len(self.refs)

    def position(self, ref: ObjectRef) -> int:
        """Where `ref` is in the reference, or -1; its own row is left out of its neighbours."""
        return self._position.get(ref, -1)

    def neighbours(self, vectors: np.ndarray, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(cosines, reference rows) of each vector's k nearest reference rows, nearest first, skipping row
        exclude[i] for vector i."""
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
        exclude = np.full(len(vectors), -1) if exclude is None else np.asarray(exclude)
        cosines, rows = np.empty((len(vectors), self.k), np.float32), np.empty((len(vectors), self.k), np.int64)
        for lo in range(0, len(vectors), QUERY_BLOCK):
            hi = lo + QUERY_BLOCK
            scores, ids = self._index.search(vectors[lo:hi], self.k + 1)
            keep = np.argsort(ids == exclude[lo:hi, None], axis=1, kind="stable")[:, : self.k]
            cosines[lo:hi], rows[lo:hi] = np.take_along_axis(scores, keep, 1), np.take_along_axis(ids, keep, 1)
        return cosines, rows

    def distances(self, vectors: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
        """Mean cosine distance of each vector to its k nearest reference rows, skipping row exclude[i]."""
        cosines, _ = self.neighbours(vectors, exclude)
        return np.maximum(0.0, 1.0 - cosines.astype(np.float64)).mean(1)

    def percentile(self, distances: np.ndarray) -> np.ndarray:
        return np.searchsorted(self._sorted, distances, side="left") / len(self._sorted)


def _now(at: datetime | None) -> datetime:
    return at or datetime.now(UTC)


def score_arrival(reference: AnomalyReference | None, ref: ObjectRef, vector: np.ndarray,
                  threshold: float = THRESHOLD, at: datetime | None = None) -> AnomalyScore:
    """The row an object gets in its own run; without a reference yet it gets no score and no flag."""
    if reference is None:
        return AnomalyScore(ref, None, None, False, _now(at), 0, K)
    distance = float(reference.distances(np.asarray(vector)[None], np.array([reference.position(ref)]))[0])
    score = float(reference.percentile(np.array([distance]))[0])
    return AnomalyScore(ref, score, distance, score > threshold, _now(at), len(reference), reference.k)


def rescore(refs: Sequence[ObjectRef], vectors: np.ndarray, k: int = K, threshold: float = THRESHOLD,
            at: datetime | None = None, settings: IndexSettings | None = None
            ) -> tuple[AnomalyReference, list[AnomalyScore]]:
    """A new reference from every current object, and a new row for each, scored leave-one-out."""
    reference = AnomalyReference(refs, vectors, k, settings)
    when = _now(at)
    scores = reference.percentile(reference.own)
    rows = [AnomalyScore(ref, float(s), float(d), bool(s > threshold), when, len(reference), k)
            for ref, s, d in zip(reference.refs, scores, reference.own, strict=True)]
    return reference, rows


def latest(rows: Iterable[AnomalyScore]) -> list[AnomalyScore]:
    """The newest row of each object (the last given wins a tie)."""
    newest: dict[ObjectRef, AnomalyScore] = {}
    for row in rows:
        if row.ref not in newest or row.scored_at >= newest[row.ref].scored_at:
            newest[row.ref] = row
    return list(newest.values())


def anomalies_json(rows: Iterable[AnomalyScore], threshold: float = THRESHOLD, include_all: bool = False) -> dict:
    """`mediasift anomalies [--all] [--threshold T] --json` (DESIGN §10): newest rows, highest score first."""
    current = sorted(latest(rows), key=lambda r: (r.score is None, -(r.score or 0.0), r.ref.key))
    shown = current if include_all else [r for r in current if r.over(threshold)]
    return {"threshold": threshold, "objects": [r.as_json(threshold) for r in shown]}
