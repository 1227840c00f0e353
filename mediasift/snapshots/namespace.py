"""Namespaces: a second set of feature tables and Lance tables, beside the live ones, that a replay fills.

A namespace lives in one folder, `<derived>/namespaces/<name>/`, so it is made, compared and dropped as a
unit and never shares a file with the live index:

- its feature tables at the folder's root, in the live layout (`<layer>/object_id=<id>/<hash>.parquet`), so
  anything that reads a derived folder reads it as is (`MEDIASIFT_DERIVED_DIR=<folder>`);
- its LanceDB tables in `lance/` (`MEDIASIFT_LANCE_URI=<folder>/lance`);
- its own inbox (`inbox.db`, SQLite), the run path's record of which versions are done, failed or pending,
  which is what lets a replay that stopped halfway resume where it stopped;
- `manifest.parquet`, the object versions it holds (the snapshot's manifest), and `namespace.json`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mediasift.config import Settings
from mediasift.snapshots.record import MANIFEST_FILE, SnapshotError, check_name

NAMESPACES_DIR = "namespaces"
RECORD_FILE = "namespace.json"
LIVE = "live"
"""The name `diff` gives the live bucket and index; no namespace or snapshot may take it."""


class UnknownNamespace(SnapshotError):
    pass


class NamespaceConflict(SnapshotError):
    """The namespace exists already and holds something else (another snapshot's versions)."""


@dataclass
class NamespaceRecord:
    """What a namespace holds and how it got there."""

    name: str
    bucket: str
    snapshot: str
    """The snapshot whose object versions it re-materialises."""
    created_at: str
    finished_at: str | None = None
    """When the last replay into it ended; None while the first is running (or if it was interrupted)."""
    versions: int = 0
    states: dict[str, int] = field(default_factory=dict)
    """Versions per inbox state after the last replay: done, unsupported, failed, superseded."""

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Namespace:
    name: str
    folder: Path

    @classmethod
    def of(cls, settings: Settings, name: str) -> Namespace:
        if name == LIVE:
            raise SnapshotError(f"{LIVE!r} names the live index; pick another namespace name")
        return cls(name, namespaces_root(settings) / check_name(name))

    @property
    def derived_dir(self) -> Path:
        return self.folder

    @property
    def lance_uri(self) -> str:
        return str((self.folder / "lance").resolve())

    @property
    def inbox_url(self) -> str:
        return f"sqlite:///{(self.folder / 'inbox.db').resolve()}"

    @property
    def manifest_path(self) -> Path:
        return self.folder / MANIFEST_FILE

    def read(self) -> NamespaceRecord | None:
        try:
            return NamespaceRecord(**json.loads((self.folder / RECORD_FILE).read_text()))
        except FileNotFoundError:
            return None

    def get(self) -> NamespaceRecord:
        record = self.read()
        if record is None:
            raise UnknownNamespace(f"no namespace {self.name!r} under {self.folder.parent} (`mediasift replay "
                                   f"--snapshot NAME --into {self.name}` makes one)")
        return record

    def write(self, record: NamespaceRecord) -> None:
        """Written under a temporary name and renamed, so a reader sees the old record or the new one."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / RECORD_FILE
        partial = path.with_suffix(".json.partial")
        partial.write_text(json.dumps(record.to_json(), indent=2))
        os.replace(partial, path)


def namespaces_root(settings: Settings) -> Path:
    return settings.derived_path / NAMESPACES_DIR
