"""Rows + lineage → an Arrow table, the one shape both stores take."""

from __future__ import annotations

import json
import time

import numpy as np
import pyarrow as pa

from mediasift.extraction.layers.rows import Row
from mediasift.extraction.models.text import DIM as TEXT_DIM
from mediasift.identity import ObjectVersion


def schema(dim: int) -> pa.Schema:
    return pa.schema([
        ("version_hash", pa.string()), ("row_no", pa.int32()),
        ("bucket", pa.string()), ("key", pa.string()), ("etag", pa.string()), ("version_id", pa.string()),
        ("object_id", pa.string()), ("extractor", pa.string()), ("created_at", pa.float64()),
        ("layer", pa.string()), ("modality", pa.string()), ("kind", pa.string()), ("text", pa.string()),
        ("t_start", pa.float64()), ("t_end", pa.float64()), ("page", pa.int32()), ("label", pa.string()),
        ("extra", pa.string()), ("vector", pa.list_(pa.float32(), dim)),
    ])


def to_arrow(rows: list[Row], version: ObjectVersion, extractor: str) -> pa.Table:
    """Every row gets the lineage fields of DESIGN §2; rows without a vector get zeros (words). The vector
    size is the rows' own (text vectors when there are none)."""
    dim = next((r.vector.shape[0] for r in rows if r.vector is not None), TEXT_DIM)
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
    return pa.table(columns, schema=schema(dim))


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
