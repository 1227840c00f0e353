"""Rows + lineage → an Arrow table, the one shape both stores take."""

from __future__ import annotations

import json
import time

import numpy as np
import pyarrow as pa

from mediasift.extraction.layers.rows import Row
from mediasift.extraction.models.text import DIM as TEXT_DIM
from mediasift.identity import ObjectVersion

CLIP_COLUMN = "clip_vector"
IDENTITY_COLUMNS = ("bucket", "key", "etag", "object_id", "version_hash")
"""Which version a row is of (DESIGN §2), present on every row; `version_id` only where the bucket keeps versions."""
LINEAGE_COLUMNS = (*IDENTITY_COLUMNS, "extractor", "created_at")
"""What every stored row must carry (mediasift.store.expectations)."""


def schema(dim: int, clip_dim: int | None = None) -> pa.Schema:
    """`clip_vector` is there only for rows that carry CLIP vectors, so tables made without CLIP keep the
    shape they always had."""
    fields = [
        ("version_hash", pa.string()), ("row_no", pa.int32()),
        ("bucket", pa.string()), ("key", pa.string()), ("etag", pa.string()), ("version_id", pa.string()),
        ("object_id", pa.string()), ("extractor", pa.string()), ("created_at", pa.float64()),
        ("layer", pa.string()), ("modality", pa.string()), ("kind", pa.string()), ("text", pa.string()),
        ("t_start", pa.float64()), ("t_end", pa.float64()), ("page", pa.int32()), ("label", pa.string()),
        ("extra", pa.string()), ("vector", pa.list_(pa.float32(), dim)),
    ]
    if clip_dim is not None:
        fields.append(pa.field(CLIP_COLUMN, pa.list_(pa.float32(), clip_dim), nullable=True))
    return pa.schema(fields)


def lineage_schema() -> pa.Schema:
    """The lineage columns alone, as the stores hold them."""
    full = schema(TEXT_DIM)
    return pa.schema([full.field(name) for name in LINEAGE_COLUMNS])


def to_arrow(rows: list[Row], version: ObjectVersion, extractor: str) -> pa.Table:
    """Every row gets the lineage fields of DESIGN §2; rows without a vector get zeros (words). The vector
    size is the rows' own (text vectors when there are none). When any row has a CLIP vector, the table has
    a `clip_vector` column, null for rows without one."""
    dim = next((r.vector.shape[0] for r in rows if r.vector is not None), TEXT_DIM)
    clip_dim = next((r.clip_vector.shape[0] for r in rows if r.clip_vector is not None), None)
    now = time.time()
    lineage = version.lineage()
    vectors = np.zeros((len(rows), dim), dtype=np.float32)
    for i, row in enumerate(rows):
        if row.vector is not None:
            vectors[i] = row.vector
    columns = {
        "version_hash": [version.version_hash] * len(rows),
        "row_no": list(range(len(rows))),
        **{name: [lineage[name]] * len(rows) for name in ("bucket", "key", "etag", "version_id", "object_id")},
        "extractor": [extractor] * len(rows),
        "created_at": [now] * len(rows),
        "layer": [r.layer for r in rows], "modality": [r.modality for r in rows], "kind": [r.kind for r in rows],
        "text": [r.text for r in rows], "t_start": [r.t_start for r in rows], "t_end": [r.t_end for r in rows],
        "page": [r.page for r in rows], "label": [r.label for r in rows],
        "extra": [json.dumps(r.extra, default=_jsonable) for r in rows],
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dim),
    }
    if clip_dim is not None:
        columns[CLIP_COLUMN] = clip_vectors(rows, clip_dim)
    return pa.table(columns, schema=schema(dim, clip_dim))


def clip_vectors(rows: list[Row], clip_dim: int) -> pa.FixedSizeListArray:
    vectors = np.zeros((len(rows), clip_dim), dtype=np.float32)
    missing = np.array([r.clip_vector is None for r in rows], dtype=bool)
    for i, row in enumerate(rows):
        if row.clip_vector is not None:
            vectors[i] = row.clip_vector
    values = pa.array(vectors.reshape(-1), pa.float32())
    return pa.FixedSizeListArray.from_arrays(values, clip_dim, mask=pa.array(missing))


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
