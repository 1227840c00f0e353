"""The JSON form of an object version and its lineage, shared by the CLI and the HTTP API."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from mediasift.analysis.objects import OBJECTS
from mediasift.extraction.layers.rows import LAYERS
from mediasift.inbox import VersionRecord
from mediasift.store.lance import LanceIndex
from mediasift.store.parquet import FeatureTables


def version_json(v: VersionRecord) -> dict:
    return {
        "bucket": v.bucket, "key": v.key, "etag": v.etag, "version_id": v.version_id, "object_id": v.object_id,
        "partition_key": v.version_hash, "state": v.state.value, "attempts": v.attempts, "in_dlq": v.in_dlq,
        "last_error": v.last_error, "size": v.size, "content_type": v.content_type, "sha256": v.sha256,
        "first_seq": v.first_seq, "created_at": v.created_at, "updated_at": v.updated_at,
    }


def layer_counts(index: LanceIndex, version_hash: str) -> dict[str, int]:
    """Rows of this version in each layer of the search index."""
    return {layer: index.count(layer, f"version_hash = '{version_hash}'") for layer in LAYERS}


def object_analysis(tables: FeatureTables, v: VersionRecord) -> dict | None:
    """The verdicts the version got at arrival, from its object-table row (None when it has none)."""
    path = tables.path(OBJECTS, v.object_id, v.version_hash)
    if not path.exists():
        return None
    (row,) = pq.read_table(path, columns=["duplicate_of", "duplicate_reason", "anomaly_score", "anomaly_flagged",
                                          "scored_at", "labels", "flags", "tags"]).to_pylist()
    return {
        "duplicate_of": json.loads(row["duplicate_of"]) if row["duplicate_of"] else None,
        "duplicate_reason": row["duplicate_reason"], "anomaly_score": row["anomaly_score"],
        "anomaly_flagged": row["anomaly_flagged"],
        "scored_at": row["scored_at"].isoformat() if row["scored_at"] else None,
        "labels": row["labels"], "flags": json.loads(row["flags"] or "[]"), "tags": row["tags"][:5],
    }
