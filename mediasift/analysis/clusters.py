"""Clusters of objects per embedding space, for finding what a collection holds and what it lacks.

HDBSCAN runs on a PCA reduction of the object-level embeddings (density estimates fail in 1280 dims; on
L2-normalised rows, Euclidean distance in the reduction tracks cosine). Cluster ids survive refreshes: a
new cluster takes the id of the previous refresh's cluster it overlaps by Jaccard ≥ `match_jaccard`
(optimal one-to-one assignment); others get an id derived from their members, so the same input always
gives the same ids with no counter to keep.

Backends: `hdbscan` (the default) and `fast_hdbscan`. bench/clusters.py on this project's shared 2-core
machine (20 groups of 1280-d objects, 16-d reduction): hdbscan 1.7 s at 10k and 81 s at 100k objects
(29 s when the machine was quiet), fast_hdbscan 2.7× and 2.8× slower in the same runs, both finding the
groups exactly; fast_hdbscan also compiles for ~30 s on a machine's first use (numba). A 24-d reduction
cost hdbscan 1.6× more at 100k for no better grouping.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import numpy as np

from mediasift.analysis.reference import ObjectRef

if TYPE_CHECKING:
    from mediasift.analysis.gaps import Gap

Backend = Literal["hdbscan", "fast_hdbscan"]
CHUNK = 65_536
"""Rows per PCA transform, to bound the centred copy."""


@dataclass(frozen=True, eq=False)
class Embedded:
    """One object as clustering sees it: its object-level vector in the space, and the words its keywords
    come from (tags for `visual`, text for `text`)."""

    ref: ObjectRef
    vector: np.ndarray
    tags: tuple[str, ...] = ()
    text: str = ""


@dataclass(frozen=True)
class ClusterSettings:
    reduced_dim: int = 16
    min_cluster_size: int | None = None
    """None: 1% of the objects, at least 5 and at most 500, so a large bucket is not cut into crumbs."""
    min_samples: int | None = None
    """None: min(min_cluster_size, 10); larger values call more points noise and cost more time."""
    backend: Backend = "hdbscan"
    match_jaccard: float = 0.5
    representatives: int = 3
    keywords: int = 8
    pca_sample: int = 50_000
    """Rows the PCA is fitted on; the rest are only projected."""
    seed: int = 0

    def cluster_size(self, n: int) -> int:
        return self.min_cluster_size or int(np.clip(n // 100, 5, 500))

    def samples(self, n: int) -> int:
        return self.min_samples or min(self.cluster_size(n), 10)


@dataclass(frozen=True)
class Cluster:
    id: str
    members: tuple[ObjectRef, ...]
    representatives: tuple[ObjectRef, ...]
    keywords: tuple[str, ...]
    label: str | None = None

    @property
    def size(self) -> int:
        return len(self.members)

    def as_json(self) -> dict:
        return {"id": self.id, "size": self.size, "label": self.label, "keywords": list(self.keywords),
                "representatives": [r.as_json() for r in self.representatives],
                "members": [m.as_json() for m in self.members]}


@dataclass(frozen=True)
class Clustering:
    space: str
    clusters: tuple[Cluster, ...]
    noise: tuple[ObjectRef, ...]
    gaps: tuple[Gap, ...] = ()

    def membership(self) -> dict[str, frozenset[str]]:
        """Cluster id → member object ids: what the next refresh matches its clusters against."""
        return {c.id: frozenset(m.object_id for m in c.members) for c in self.clusters}

    def as_json(self) -> dict:
        return {"space": self.space, "clusters": [c.as_json() for c in self.clusters],
                "noise": [n.as_json() for n in self.noise], "gaps": [g.as_json() for g in self.gaps]}


def membership_from_json(data: Mapping) -> dict[str, frozenset[str]]:
    """The membership of a stored clusters JSON (DESIGN §10), for matching ids on the next refresh."""
    return {c["id"]: frozenset(m["object_id"] for m in c["members"]) for c in data["clusters"]}


def cluster_space(space: str, objects: Sequence[Embedded], previous: Mapping[str, Collection[str]] | None = None,
                  settings: ClusterSettings | None = None) -> Clustering:
    """Cluster one space's objects; `previous` (cluster id → member object ids) keeps ids stable."""
    settings = settings or ClusterSettings()
    labels = cluster_labels(np.stack([o.vector for o in objects]) if objects else np.zeros((0, 1)), settings)
    groups = [np.flatnonzero(labels == number) for number in range(labels.max(initial=-1) + 1)]
    ids = stable_ids([frozenset(objects[i].ref.object_id for i in g) for g in groups], previous or {},
                     settings.match_jaccard)
    keywords = (tag_keywords if space == "visual" else term_keywords)(objects, groups, settings.keywords)
    clusters = [Cluster(cid, _sorted_refs(objects, g), _representatives(objects, g, settings.representatives), kw)
                for cid, g, kw in zip(ids, groups, keywords, strict=True)]
    clusters.sort(key=lambda c: (-c.size, c.id))
    return Clustering(space, tuple(clusters), _sorted_refs(objects, np.flatnonzero(labels < 0)))


def cluster_labels(vectors: np.ndarray, settings: ClusterSettings) -> np.ndarray:
    """HDBSCAN labels (-1 for noise) of the rows, on their PCA reduction."""
    n = len(vectors)
    if n < max(settings.cluster_size(n), 2):
        return np.full(n, -1)
    return density_labels(reduce(vectors, settings.reduced_dim, settings.pca_sample, settings.seed), settings)


def density_labels(points: np.ndarray, settings: ClusterSettings) -> np.ndarray:
    """HDBSCAN on already reduced points, with the configured backend."""
    size, samples = settings.cluster_size(len(points)), settings.samples(len(points))
    if settings.backend == "fast_hdbscan":
        import fast_hdbscan

        model = fast_hdbscan.HDBSCAN(min_cluster_size=size, min_samples=samples, reproducible=True)
    else:
        import hdbscan

        model = hdbscan.HDBSCAN(min_cluster_size=size, min_samples=samples, core_dist_n_jobs=1)
    return np.asarray(model.fit_predict(points))


def reduce(vectors: np.ndarray, dim: int, sample: int, seed: int) -> np.ndarray:
    """PCA to `dim` components, fitted on a sample of rows and applied to all of them chunk by chunk."""
    from sklearn.decomposition import PCA

    n, width = vectors.shape
    rng = np.random.default_rng(seed)
    fit_rows = vectors[np.sort(rng.choice(n, sample, replace=False))] if n > sample else vectors
    pca = PCA(min(dim, width, len(fit_rows)), svd_solver="randomized", random_state=seed).fit(fit_rows)
    return np.vstack([pca.transform(vectors[lo:lo + CHUNK]) for lo in range(0, n, CHUNK)]).astype(np.float32)


def stable_ids(groups: Sequence[frozenset[str]], previous: Mapping[str, Collection[str]],
               threshold: float) -> list[str]:
    """Each group's id: the previous cluster it overlaps most in an optimal one-to-one matching, when that
    overlap reaches `threshold` (Jaccard); else an id made from its members."""
    ids = [_fresh_id(g) for g in groups]
    if not groups or not previous:
        return ids
    from scipy.optimize import linear_sum_assignment

    old_ids = sorted(previous)
    old = [frozenset(previous[i]) for i in old_ids]
    overlap = np.array([[len(g & o) / len(g | o) for o in old] for g in groups])
    for row, col in zip(*linear_sum_assignment(overlap, maximize=True), strict=True):
        if overlap[row, col] >= threshold:
            ids[row] = old_ids[col]
    return ids


def _fresh_id(members: frozenset[str]) -> str:
    return hashlib.sha256("\0".join(sorted(members)).encode()).hexdigest()[:12]


def _sorted_refs(objects: Sequence[Embedded], rows: np.ndarray) -> tuple[ObjectRef, ...]:
    return tuple(sorted((objects[i].ref for i in rows), key=lambda r: (r.bucket, r.key, r.etag)))


def _representatives(objects: Sequence[Embedded], rows: np.ndarray, count: int) -> tuple[ObjectRef, ...]:
    """The members nearest the centroid (by cosine, in the full space): what a person looks at first."""
    vectors = _unit(np.stack([objects[i].vector for i in rows]).astype(np.float32))
    centroid = _unit(vectors.mean(0, keepdims=True))[0]
    nearest = np.lexsort((rows, -(vectors @ centroid)))[:count]
    return tuple(objects[rows[i]].ref for i in nearest)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def tag_keywords(objects: Sequence[Embedded], groups: Sequence[np.ndarray], count: int) -> list[tuple[str, ...]]:
    """The tags most members of each group carry (each member counts a tag once)."""
    result = []
    for rows in groups:
        carried = Counter(tag for i in rows for tag in set(objects[i].tags))
        result.append(tuple(t for t, _ in sorted(carried.items(), key=lambda kv: (-kv[1], kv[0]))[:count]))
    return result


def term_keywords(objects: Sequence[Embedded], groups: Sequence[np.ndarray], count: int) -> list[tuple[str, ...]]:
    """Top terms per group by class-based TF-IDF (BERTopic's c-TF-IDF): each group's texts are one document,
    the unclustered rest another, so words common to the whole collection rank low."""
    from sklearn.feature_extraction.text import CountVectorizer

    clustered = np.zeros(len(objects), dtype=bool)
    for rows in groups:
        clustered[rows] = True
    documents = [" ".join(objects[i].text for i in rows) for rows in groups]
    documents.append(" ".join(o.text for o, inside in zip(objects, clustered, strict=True) if not inside))
    vectorizer = CountVectorizer(stop_words="english")
    try:
        counts = vectorizer.fit_transform(documents).toarray().astype(np.float64)
    except ValueError:  # no words at all but stop words: no group has a keyword
        return [() for _ in groups]
    terms = vectorizer.get_feature_names_out()
    frequency = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    weight = frequency * np.log1p(counts.sum(1).mean() / np.maximum(counts.sum(0), 1))
    return [tuple(terms[j] for j in np.lexsort((terms, -row))[:count] if row[j] > 0) for row in weight[:-1]]


def with_labels(clustering: Clustering, labels: Mapping[str, str | None]) -> Clustering:
    """The clustering with each cluster's label (cluster id → label) set."""
    return replace(clustering, clusters=tuple(replace(c, label=labels.get(c.id)) for c in clustering.clusters))
