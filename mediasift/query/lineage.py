"""The JSON form of an object version and its lineage, shared by the CLI and the HTTP API."""

from __future__ import annotations

from mediasift.extraction.layers.rows import LAYERS
from mediasift.inbox import VersionRecord
from mediasift.store.lance import LanceIndex


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
