"""What the analyses compare against: which object a row is, and a growing cosine index over L2-normalised
features (the representatives for duplicates, the reference set for anomaly scores).

A brute-force scan of 1M × 1280 float32 rows (5 GB) takes 0.5-1 s per query on two cores, so past
`IndexSettings.ivf_from` rows the index becomes an inverted file: rows are projected on the top
`reduced_dim` directions of their uncentred second moment, assigned to k-means lists, and a query scans
its `nprobe` nearest lists there, then re-ranks the best `refine` candidates with the full vectors.
Rows added since the last restructuring sit in an exact tail. The structure changes only at row counts
fixed in advance (tail full, count doubled), so adding rows one by one or a block at a time through
`room()` gives the same index, which is what lets a batch replay reproduce verdicts made at arrival.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from threadpoolctl import ThreadpoolController

from mediasift.identity import ObjectVersion

CHUNK = 65_536
"""Rows per matrix product when scanning or assigning, to bound temporaries."""
_THREADS = ThreadpoolController()
_ONE_BLAS_THREAD = _THREADS.wrap(limits=1, user_api="blas")
"""Adding and searching run BLAS on one thread: the products here are small and many, and on two busy
cores OpenBLAS's threads made a query 2x, a batch of 1000 queries 8x and a QR 17x slower."""


@dataclass(frozen=True)
class ObjectRef:
    """An object version as every analysis JSON names it (DESIGN §10)."""

    bucket: str
    key: str
    etag: str
    object_id: str

    @classmethod
    def of(cls, version: ObjectVersion) -> ObjectRef:
        return cls(version.bucket, version.key, version.etag, version.object_id)

    def as_json(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class IndexSettings:
    ivf_from: int = 4096
    """Rows searched exactly before the inverted file is first trained: a scan of 4,096 × 1280 float32
    takes ~2 ms, and the scan is memory-bound (20k rows took ~10 ms here)."""
    tail: int = 1024
    reduced_dim: int = 256
    nprobe: int = 8
    refine: int = 32
    sample: int = 20_000
    """Rows the projection and the k-means lists are trained on."""
    dtype: str = "float32"
    """Storage of the full vectors; "float16" halves the memory (scans convert chunk by chunk)."""
    seed: int = 0


class _Growing:
    """An array that grows by appending (capacity doubles), so adding one row costs amortised O(row)."""

    def __init__(self, row_shape: tuple[int, ...], dtype, capacity: int = 16):
        self._data = np.empty((capacity, *row_shape), dtype=dtype)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def append(self, rows: np.ndarray) -> None:
        need = self._n + len(rows)
        if need > len(self._data):
            grown = np.empty((max(need, 2 * len(self._data)), *self._data.shape[1:]), dtype=self._data.dtype)
            grown[: self._n] = self._data[: self._n]
            self._data = grown
        self._data[self._n:need] = rows
        self._n = need

    @property
    def values(self) -> np.ndarray:
        return self._data[: self._n]


def best_k(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best columns per row, unordered; short rows are padded with (-inf, -1)."""
    if scores.shape[1] < k:
        pad = k - scores.shape[1]
        return (np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf),
                np.pad(ids, ((0, 0), (0, pad)), constant_values=-1))
    if scores.shape[1] == k:
        return scores, ids
    keep = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return np.take_along_axis(scores, keep, 1), np.take_along_axis(ids, keep, 1)


def top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best columns per row, best first; ties go to the lower id, so results never depend on the
    order candidates were gathered in. Short rows are padded with (-inf, -1)."""
    scores, ids = best_k(scores, ids, k)
    order = np.lexsort((np.where(ids < 0, np.iinfo(np.int64).max, ids), -scores), axis=1)
    return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)


class VectorIndex:
    """Cosine search over L2-normalised rows whose ids are their insertion order."""

    def __init__(self, dim: int, settings: IndexSettings | None = None):
        self.dim = dim
        self.settings = settings or IndexSettings()
        self._full = _Growing((dim,), np.dtype(self.settings.dtype))
        self._tail_from = 0
        self._next_build = self.settings.ivf_from
        self._projection: np.ndarray | None = None
        self._centroids: np.ndarray | None = None
        self._lists: list[tuple[_Growing, _Growing]] = []

    def __len__(self) -> int:
        return len(self._full)

    @property
    def trained(self) -> bool:
        return self._centroids is not None

    def room(self) -> int:
        """Rows that can be added before the structure next changes (at least 1)."""
        limit = self._next_build
        if self.trained:
            limit = min(limit, self._tail_from + self.settings.tail)
        return max(1, limit - len(self))

    @_ONE_BLAS_THREAD
    def add(self, vectors: np.ndarray) -> None:
        self._full.append(np.asarray(vectors, dtype=np.float32).reshape(-1, self.dim))
        if len(self) >= self._next_build:
            self._build()
        elif self.trained and len(self) - self._tail_from >= self.settings.tail:
            self._assign(self._tail_from, len(self))

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        return self._full.values[ids].astype(np.float32, copy=False)

    @_ONE_BLAS_THREAD
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, ids), each (len(queries), k), best first; padded with (-inf, -1)."""
        queries = np.asarray(queries, dtype=np.float32).reshape(-1, self.dim)
        scores, ids = self._exact(queries, k, self._tail_from, len(self))
        if self.trained:
            listed = self._inverted(queries, k)
            scores, ids = top_k(np.hstack([scores, listed[0]]), np.hstack([ids, listed[1]]), k)
        return scores, ids

    def _exact(self, queries: np.ndarray, k: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        best = (np.full((len(queries), 0), -np.inf, np.float32), np.full((len(queries), 0), -1, np.int64))
        for lo in range(start, stop, CHUNK):
            hi = min(lo + CHUNK, stop)
            scores = queries @ self._full.values[lo:hi].astype(np.float32, copy=False).T
            found = best_k(scores, np.broadcast_to(np.arange(lo, hi), scores.shape), k)
            best = best_k(np.hstack([best[0], found[0]]), np.hstack([best[1], found[1]]), k)
        return top_k(*best, k)

    def _inverted(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.settings
        reduced = queries @ self._projection
        probes = self._nearest_lists(reduced, min(s.nprobe, len(self._lists)))
        if len(queries) == 1:
            return self._rerank(queries, self._one_query(reduced[0], probes[0]), k)
        scores = np.full((len(queries), probes.size // len(queries) * s.refine), -np.inf, np.float32)
        ids = np.full(scores.shape, -1, np.int64)
        asking, slot = np.divmod(np.arange(probes.size), probes.shape[1])
        order = np.argsort(probes.ravel(), kind="stable")
        numbers, starts = np.unique(probes.ravel()[order], return_index=True)
        for number, pairs in zip(numbers, np.split(order, starts[1:]), strict=True):
            vectors, members = self._lists[number]
            if not len(members):
                continue
            rows = asking[pairs]
            candidates = np.broadcast_to(members.values, (len(rows), len(members)))
            found = best_k(reduced[rows] @ vectors.values.T, candidates, s.refine)
            columns = slot[pairs, None] * s.refine + np.arange(s.refine)
            scores[rows[:, None], columns], ids[rows[:, None], columns] = found
        return self._rerank(queries, best_k(scores, ids, s.refine)[1], k)

    def _one_query(self, reduced: np.ndarray, probes: np.ndarray) -> np.ndarray:
        """The batched path's candidates for a lone query (an object arriving), in a few calls instead of
        a few per list."""
        scores = np.concatenate([self._lists[number][0].values @ reduced for number in probes])
        ids = np.concatenate([self._lists[number][1].values for number in probes])
        return best_k(scores[None], ids[None], self.settings.refine)[1]

    def _rerank(self, queries: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact cosines of the candidates the reduced space proposed (a few hundred queries at a time, to
        bound the gathered vectors)."""
        exact = np.empty(ids.shape, np.float32)
        for lo in range(0, len(queries), 256):
            full = self._full.values[np.maximum(ids[lo:lo + 256], 0)].astype(np.float32, copy=False)
            exact[lo:lo + 256] = np.einsum("qd,qcd->qc", queries[lo:lo + 256], full)
        return top_k(np.where(ids >= 0, exact, -np.inf), ids, k)

    def _nearest_lists(self, reduced: np.ndarray, count: int) -> np.ndarray:
        return nearest_centroids(reduced, self._centroids, count)

    def _build(self) -> None:
        """Train the projection and the lists on a sample of every row so far, then re-list all rows. 2√n
        lists, not √n: a query scans half the rows for twice the (cheap) centroids, which took an arriving
        object at 300k rows from ~7 to ~5 ms here at the same recall."""
        s, n = self.settings, len(self)
        rng = np.random.default_rng(s.seed)
        rows = np.sort(rng.choice(n, min(n, s.sample), replace=False))
        sample = self._full.values[rows].astype(np.float32, copy=False)
        self._projection = _principal_directions(sample, s.reduced_dim, rng)
        lists = min(len(sample), int(np.clip(round(2 * math.sqrt(n)), 16, 4096)))
        self._centroids = _kmeans(sample @ self._projection, lists, rng)
        self._lists = [(_Growing((self._projection.shape[1],), np.float32), _Growing((), np.int64))
                       for _ in range(lists)]
        self._assign(0, n)
        self._next_build = 2 * n

    def _assign(self, start: int, stop: int) -> None:
        for lo in range(start, stop, CHUNK):
            hi = min(lo + CHUNK, stop)
            reduced = self._full.values[lo:hi].astype(np.float32, copy=False) @ self._projection
            owner = nearest_centroids(reduced, self._centroids, 1)[:, 0]
            order = np.argsort(owner, kind="stable")
            numbers, starts = np.unique(owner[order], return_index=True)
            for number, rows in zip(numbers, np.split(order, starts[1:]), strict=True):
                vectors, members = self._lists[number]
                vectors.append(reduced[rows])
                members.append(rows + lo)
        self._tail_from = stop


def _principal_directions(sample: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """The top directions of the uncentred second moment (inner products, hence cosines, survive the
    projection best on them; centring would bias them), by a few rounds of randomized subspace iteration:
    a full eigendecomposition of 1280 × 1280 took 2-7 s on these two busy cores, this a fraction of it."""
    if sample.shape[1] <= count:
        return np.eye(sample.shape[1], dtype=np.float32)
    moment = (sample.T @ sample).astype(np.float64)
    basis = rng.normal(size=(moment.shape[0], count + 16))
    for _ in range(4):
        basis, _ = np.linalg.qr(moment @ basis)
    _, rotation = np.linalg.eigh(basis.T @ moment @ basis)
    return np.ascontiguousarray((basis @ rotation[:, ::-1])[:, :count], dtype=np.float32)


def nearest_centroids(points: np.ndarray, centroids: np.ndarray, count: int) -> np.ndarray:
    """The `count` nearest centroids of each point (Euclidean), nearest first."""
    distances = (centroids**2).sum(1) - 2 * points @ centroids.T
    if count == 1:
        return distances.argmin(1)[:, None]
    nearest = np.argpartition(distances, count - 1, axis=1)[:, :count]
    return np.take_along_axis(nearest, np.argsort(np.take_along_axis(distances, nearest, 1), 1), 1)


def _kmeans(points: np.ndarray, count: int, rng: np.random.Generator, rounds: int = 8) -> np.ndarray:
    """Plain Lloyd rounds from random rows: the lists only need to be roughly balanced, scikit-learn is
    not a dependency of the core, and its KMeans took several times longer here."""
    centroids = points[rng.choice(len(points), count, replace=False)].copy()
    for _ in range(rounds):
        owner = nearest_centroids(points, centroids, 1)[:, 0]
        order = np.argsort(owner, kind="stable")
        filled, starts, sizes = np.unique(owner[order], return_index=True, return_counts=True)
        centroids[filled] = np.add.reduceat(points[order], starts) / sizes[:, None]
    return centroids
