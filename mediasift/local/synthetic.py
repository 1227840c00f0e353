"""Synthetic data for recall tests and search benchmarks: embedding-like vectors and index rows around them."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from mediasift.store.records import schema


def embedding_like_vectors(n: int, dim: int, seed: int = 0, intrinsic: int = 48, clusters: int = 1000) -> np.ndarray:
    """Unit vectors shaped like real embeddings: clusters on a low-dimensional subspace plus a little
    isotropic noise. (Isotropic random vectors have no neighbourhood structure at all; no ANN index, and
    no embedding model, produces them.) The same seed family always gives the same space."""
    basis, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(dim, intrinsic)))
    centers = np.random.default_rng(2).normal(size=(clusters, intrinsic))
    rng = np.random.default_rng(seed)
    z = centers[rng.integers(0, clusters, n)] + 0.35 * rng.normal(size=(n, intrinsic))
    x = (z @ basis.T + 0.02 * rng.normal(size=(n, dim))).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def synthetic_rows(vectors: np.ndarray, layer: str = "pages") -> pa.Table:
    """Index rows around given vectors (lineage filled in), for recall tests and search benchmarks."""
    n, dim = vectors.shape
    ids = [f"{i:016x}" for i in range(n)]
    columns = {name: pa.nulls(n, field.type) for name, field in zip(schema(dim).names, schema(dim), strict=True)}
    columns.update({
        "version_hash": pa.array(ids), "row_no": pa.array(np.zeros(n, dtype=np.int32)),
        "bucket": pa.array(["synthetic"] * n), "key": pa.array([f"doc/{i}.pdf" for i in range(n)]),
        "etag": pa.array(ids), "object_id": pa.array(ids), "extractor": pa.array(["synthetic"] * n),
        "layer": pa.array([layer] * n), "modality": pa.array(["pdf"] * n), "kind": pa.array(["page"] * n),
        "text": pa.array([f"document {i}" for i in range(n)]), "page": pa.array(np.ones(n, dtype=np.int32)),
        "extra": pa.array(["{}"] * n),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
    })
    return pa.table(columns, schema=schema(dim))
