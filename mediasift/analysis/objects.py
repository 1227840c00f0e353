"""The object table: one row per indexed object version, the representation every analysis reads.

Written in the object's own run, as the feature table `objects` (`<derived>/objects/object_id=…/<version
hash>.parquet`): lineage, the arrival sequence number, content facts, the object-level embedding of each
space (`visual`: an image's feature, or the mean of a video's keyframe or a PDF's page features;
`text`: the mean of the MiniLM vectors of its transcript, page and scene rows), the pHash of an image,
the MinHash signature of its words, its tags and entities, and the verdicts it got at arrival. Batch
views (duplicate groups, clusters, rescored anomalies, classifications) read it with polars.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from mediasift.analysis.duplicates import Fingerprint, Verdict
from mediasift.analysis.reference import ObjectRef
from mediasift.extraction.models.imagenet import DIM as VISUAL_DIM
from mediasift.extraction.models.text import DIM as TEXT_DIM
from mediasift.identity import ObjectVersion

if TYPE_CHECKING:
    import polars as pl

    from mediasift.store.parquet import FeatureTables

OBJECTS = "objects"
"""The feature-table name of the object table."""
TEXT_LIMIT = 20_000
"""Characters of an object's words kept in its row (keywords, prompts and rules read them)."""

SCHEMA = pa.schema([
    ("version_hash", pa.string()), ("bucket", pa.string()), ("key", pa.string()), ("etag", pa.string()),
    ("version_id", pa.string()), ("object_id", pa.string()), ("arrived", pa.int64()),
    ("modality", pa.string()), ("content_type", pa.string()), ("size", pa.int64()), ("sha256", pa.string()),
    ("visual", pa.list_(pa.float32(), VISUAL_DIM)), ("phash", pa.uint64()),
    ("text_vector", pa.list_(pa.float32(), TEXT_DIM)), ("text_signature", pa.list_(pa.uint32())),
    ("tags", pa.list_(pa.string())), ("text", pa.string()),
    ("entities", pa.list_(pa.struct([("label", pa.string()), ("text", pa.string())]))),
    ("duplicate_of", pa.string()), ("duplicate_reason", pa.string()),
    ("anomaly_score", pa.float64()), ("anomaly_distance", pa.float64()), ("anomaly_flagged", pa.bool_()),
    ("scored_at", pa.timestamp("us", tz="UTC")), ("reference_size", pa.int64()),
    ("labels", pa.list_(pa.string())), ("flags", pa.string()),
])


@dataclass
class ObjectSummary:
    """What extraction learned about the object as a whole (made by the worker, beside the layer rows)."""

    visual: np.ndarray | None = None
    phash: int | None = None
    text_vector: np.ndarray | None = None
    text: str = ""
    tags: list[str] = field(default_factory=list)
    entities: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class ObjectRecord:
    """An object version's row of the object table."""

    version: ObjectVersion
    arrived: int
    modality: str
    content_type: str
    size: int
    sha256: str
    summary: ObjectSummary
    text_signature: np.ndarray | None = None
    verdict: Verdict = field(default_factory=Verdict)
    anomaly: dict | None = None
    """`score`, `distance`, `flagged`, `scored_at`, `reference_size` (None without a reference yet)."""
    labels: list[str] = field(default_factory=list)
    flags: list[dict] = field(default_factory=list)

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef.of(self.version)

    def fingerprint(self) -> Fingerprint:
        """Pictures are compared by their feature (and pHash), everything else by its words."""
        s = self.summary
        if s.visual is not None:
            return Fingerprint(self.ref, self.arrived, self.sha256, visual=s.visual, phash=s.phash)
        return Fingerprint(self.ref, self.arrived, self.sha256, text=self.text_signature)

    def verdict_facts(self) -> dict[str, object]:
        """The arrival verdicts as asset metadata and `objects show` name them."""
        a = self.anomaly or {}
        duplicate_of = self.verdict.duplicate_of
        return {"duplicate_of": duplicate_of and f"s3://{duplicate_of.bucket}/{duplicate_of.key}",
                "duplicate_reason": self.verdict.reason, "anomaly_score": a.get("score"),
                "anomaly_flagged": a.get("flagged")}

    def to_arrow(self) -> pa.Table:
        s, v, a = self.summary, self.version, self.anomaly or {}
        row = {
            "version_hash": v.version_hash, "bucket": v.bucket, "key": v.key, "etag": v.etag,
            "version_id": v.version_id, "object_id": v.object_id, "arrived": self.arrived,
            "modality": self.modality, "content_type": self.content_type, "size": self.size, "sha256": self.sha256,
            "visual": _floats(s.visual), "phash": s.phash, "text_vector": _floats(s.text_vector),
            "text_signature": None if self.text_signature is None else self.text_signature.tolist(),
            "tags": s.tags, "text": s.text[:TEXT_LIMIT],
            "entities": [{"label": label, "text": text} for label, text in s.entities],
            "duplicate_of": json.dumps(self.verdict.duplicate_of.as_json()) if self.verdict.duplicate_of else None,
            "duplicate_reason": self.verdict.reason,
            "anomaly_score": a.get("score"), "anomaly_distance": a.get("distance"),
            "anomaly_flagged": a.get("flagged"), "scored_at": a.get("scored_at"),
            "reference_size": a.get("reference_size"), "labels": self.labels, "flags": json.dumps(self.flags),
        }
        return pa.Table.from_pylist([row], schema=SCHEMA)


def _floats(vector: np.ndarray | None) -> list[float] | None:
    return None if vector is None else np.asarray(vector, dtype=np.float32).tolist()


def ref_of(row: dict) -> ObjectRef:
    return ObjectRef(row["bucket"], row["key"], row["etag"], row["object_id"])


FINGERPRINT_COLUMNS = ("bucket", "key", "etag", "object_id", "arrived", "sha256", "visual", "phash", "text_signature")
"""What `fingerprint_of` reads of a row."""


def fingerprint_of(row: dict) -> Fingerprint:
    """A stored row's fingerprint, as its run made it."""
    ref = ref_of(row)
    if row["visual"] is not None:
        return Fingerprint(ref, row["arrived"], row["sha256"], visual=np.asarray(row["visual"], np.float32),
                           phash=row["phash"])
    signature = row["text_signature"]
    return Fingerprint(ref, row["arrived"], row["sha256"],
                       text=None if signature is None else np.asarray(signature, np.uint32))


def verdict_of(row: dict) -> Verdict:
    if row["duplicate_of"] is None:
        return Verdict()
    return Verdict(ObjectRef(**json.loads(row["duplicate_of"])), row["duplicate_reason"])


def scan_objects(tables: FeatureTables) -> pl.LazyFrame | None:
    """Every row of the object table, lazily, read with its known schema (None before anything is indexed)."""
    return tables.scan(OBJECTS, SCHEMA)


def current(frame: pl.LazyFrame, live_version_hashes: set[str] | None = None) -> pl.DataFrame:
    """The rows of versions still current (all rows when `live_version_hashes` is None), in arrival order."""
    import polars as pl

    if live_version_hashes is not None:
        frame = frame.filter(pl.col("version_hash").is_in(sorted(live_version_hashes)))
    return frame.sort("arrived", "bucket", "key", "etag").collect()


