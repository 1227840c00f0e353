"""What one snapshot remembers, kept as `<derived>/snapshots/<name>/snapshot.json` beside its Parquet files.

The record is written last, under a temporary name and renamed into place: it is the commit point, so a
snapshot whose creation failed halfway leaves no record, and a record always has all its parts.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

from mediasift.errors import MediasiftError

RECORD_FILE = "snapshot.json"
MANIFEST_FILE = "manifest.parquet"
FEATURES_FILE = "features.parquet"
FEATURES_DIR = "features"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
"""Lance tag names allow letters, digits, `.`, `-` and `_`; Tigris takes the name inside a header value."""


class SnapshotError(MediasiftError):
    """A snapshot cannot be made, found or used; the message says which and what to do."""


class UnknownSnapshot(SnapshotError):
    pass


class SnapshotExists(SnapshotError):
    pass


class ForkUnsupported(SnapshotError):
    pass


class StoreKind(StrEnum):
    """How a snapshot of the bucket is taken: natively (Tigris) or as a manifest of object versions."""

    TIGRIS = "tigris"
    S3 = "s3"


@dataclass(frozen=True)
class InboxState:
    """Where the event inbox stood: the index reflects at most the events up to `last_seq`, and not those
    of versions still pending or running."""

    last_seq: int
    depth: int
    counts: dict[str, int]


@dataclass
class SnapshotRecord:
    name: str
    bucket: str
    store: StoreKind
    created_at: str
    lance_tag: str | None = None
    lance_versions: dict[str, int] = field(default_factory=dict)
    """Each LanceDB table's version under `lance_tag`."""
    feature_files: int = 0
    inbox: InboxState | None = None
    tigris_version: str | None = None
    """The Tigris snapshot version (X-Tigris-Snapshot-Version); None off Tigris."""
    versioned: bool | None = None
    """Off Tigris: whether the manifest names VersionIds (bucket versioning on) or only ETags."""
    objects: int | None = None
    """Off Tigris: rows in the manifest, one per current object."""
    recorded: bool = True
    """False for a Tigris snapshot taken outside mediasift: it has no index tags or feature files."""

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> SnapshotRecord:
        inbox = data.get("inbox")
        return cls(**{**data, "store": StoreKind(data["store"]),
                      "inbox": InboxState(**inbox) if inbox else None})


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise SnapshotError(f"snapshot name {name!r}: use 1-100 letters, digits, '.', '-' or '_', "
                            "starting with a letter or digit")
    return name


def lance_tag(name: str) -> str:
    """The LanceDB tag that pins a snapshot's table versions (prefixed so other tags never collide)."""
    return f"snapshot-{name}"


def write_record(folder: Path, record: SnapshotRecord) -> Path:
    path = folder / RECORD_FILE
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(record.to_json(), indent=2))
    os.replace(partial, path)
    return path


def read_record(folder: Path) -> SnapshotRecord | None:
    try:
        return SnapshotRecord.from_json(json.loads((folder / RECORD_FILE).read_text()))
    except FileNotFoundError:
        return None
