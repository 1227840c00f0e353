"""Compare two sides (snapshots, replay namespaces, or the live bucket and index): which objects were added,
removed or changed, how many rows each layer holds for each side's objects, and what a query finds on each.

A side is the object versions it holds, the feature tables it reads and the index it searches:

| side      | objects                                   | feature tables                  | index                     |
|-----------|-------------------------------------------|---------------------------------|---------------------------|
| live      | the bucket's current versions, listed now | `<derived>/`                    | the live Lance tables     |
| snapshot  | its manifest (Tigris: listed as of it)    | the files it kept (`features/`) | the tables at its tag     |
| namespace | the versions replayed into it             | `<derived>/namespaces/<name>/`  | the namespace's tables    |

An object is *changed* when both sides hold its key with another ETag, or another VersionId where both
name one (an ETag-only manifest cannot tell two uploads of the same bytes apart). Feature rows are counted
for the side's own versions only, so the live side's history of superseded versions is not counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq

from mediasift.analysis.objects import scan_objects
from mediasift.analysis.views import load_objects
from mediasift.config import Settings
from mediasift.extraction.layers.rows import LAYERS
from mediasift.query.search import Filters, Searcher
from mediasift.snapshots.manifest import current_versions
from mediasift.snapshots.namespace import LIVE, Namespace, NamespaceConflict, UnknownNamespace
from mediasift.snapshots.record import FEATURES_DIR, SnapshotError, UnknownSnapshot
from mediasift.snapshots.replay import snapshot_versions
from mediasift.snapshots.service import Snapshots
from mediasift.store.lance import LanceIndex
from mediasift.store.parquet import FeatureTables

if TYPE_CHECKING:
    import polars as pl

    from mediasift.extraction.models import Models

SNAPSHOT_PREFIX = "snapshot:"
NAMESPACE_PREFIX = "namespace:"


@dataclass(frozen=True)
class Held:
    """One object version as a side holds it."""

    etag: str
    version_id: str | None

    def differs(self, other: Held) -> bool:
        if self.etag != other.etag:
            return True
        return bool(self.version_id and other.version_id and self.version_id != other.version_id)

    def to_json(self) -> dict:
        return {"etag": self.etag, "version_id": self.version_id}


@dataclass
class Side:
    name: str
    kind: str
    """live, snapshot or namespace."""
    objects: dict[str, Held]
    tables: FeatureTables
    index: LanceIndex

    def feature_rows(self, layer: str) -> int:
        """Rows of `layer` in the feature tables that belong to this side's object versions."""
        frame = self.tables.scan(layer)
        if frame is None:
            return 0
        rows = frame.select("key", "etag").collect().iter_rows()
        return sum(1 for key, etag in rows if (held := self.objects.get(key)) is not None and held.etag == etag)

    def summary(self) -> dict:
        return {"name": self.name, "kind": self.kind, "objects": len(self.objects)}

    def object_table(self) -> pl.DataFrame:
        """The object table's rows of this side's object versions only, in arrival order: what the analysis
        views read as of the side (a snapshot's kept files also hold superseded versions, which it did not)."""
        frame = scan_objects(self.tables)
        rows = [] if frame is None else frame.select("version_hash", "key", "etag", "version_id").collect().iter_rows()
        held = {h for h, key, etag, version_id in rows
                if (mine := self.objects.get(key)) is not None and not mine.differs(Held(etag, version_id))}
        return load_objects(self.tables.root, held)


def resolve(settings: Settings, name: str, snapshots: Snapshots | None = None) -> Side:
    """`live`, `snapshot:NAME`, `namespace:NAME`, or a bare NAME: a snapshot or a namespace, refused when it
    could be either."""
    snapshots = snapshots or Snapshots(settings)
    if name == LIVE:
        return live_side(settings, snapshots)
    if name.startswith(SNAPSHOT_PREFIX):
        return snapshot_side(snapshots, name.removeprefix(SNAPSHOT_PREFIX))
    if name.startswith(NAMESPACE_PREFIX):
        return namespace_side(settings, name.removeprefix(NAMESPACE_PREFIX))
    found = []
    for make in (lambda: snapshot_side(snapshots, name), lambda: namespace_side(settings, name)):
        try:
            found.append(make())
        except (UnknownSnapshot, UnknownNamespace):
            continue
    if len(found) > 1:
        raise NamespaceConflict(f"{name!r} is both a snapshot and a namespace: write snapshot:{name} or "
                                f"namespace:{name}")
    if not found:
        raise SnapshotError(f"{name!r} is neither a snapshot nor a namespace of bucket {settings.bucket!r} "
                            f"(`mediasift snapshot list`; `{LIVE}` is the live index)")
    return found[0]


def live_side(settings: Settings, snapshots: Snapshots) -> Side:
    listed, _ = current_versions(snapshots.new_client(), settings.bucket, skip_prefix=settings.derived_prefix)
    return Side(LIVE, "live", _held(listed.to_pylist()), FeatureTables(settings.derived_path),
                LanceIndex(settings.lance_location))


def snapshot_side(snapshots: Snapshots, name: str) -> Side:
    record = snapshots.get(name)
    folder = snapshots.folder(name)
    objects = {v.key: Held(v.etag, v.version_id) for v in snapshot_versions(snapshots.reader(name))}
    # A Tigris snapshot taken outside mediasift pins no index: it reads as an index with no tables.
    index = snapshots.index(name) if record.lance_tag else LanceIndex(str(Path(folder) / "no-index"))
    return Side(name, "snapshot", objects, FeatureTables(folder / FEATURES_DIR), index)


def namespace_side(settings: Settings, name: str) -> Side:
    namespace = Namespace.of(settings, name)
    namespace.get()
    objects = _held(pq.read_table(namespace.manifest_path).to_pylist())
    return Side(name, "namespace", objects, FeatureTables(namespace.derived_dir), LanceIndex(namespace.lance_uri))


def _held(rows: list[dict]) -> dict[str, Held]:
    return {r["key"]: Held(r["etag"], r["version_id"]) for r in rows}


def diff(a: Side, b: Side, queries: Sequence[str] = (), k: int = 5, models: Models | None = None) -> dict:
    """The comparison as JSON (the shape `mediasift diff --json` prints; see the README):

    `{"a": {name, kind, objects}, "b": {…}, "objects": {"added": [{key, etag, version_id}], "removed": [...],
    "changed": [{key, "a": {etag, version_id}, "b": {…}}], "unchanged": N}, "rows": {layer: {"a": {features,
    index}, "b": {…}}}, "queries": [{query, "a": [hit], "b": [hit]}]}`. Added means in B and not in A."""
    added = [{"key": key, **held.to_json()} for key, held in sorted(b.objects.items()) if key not in a.objects]
    removed = [{"key": key, **held.to_json()} for key, held in sorted(a.objects.items()) if key not in b.objects]
    changed = [{"key": key, "a": held.to_json(), "b": b.objects[key].to_json()}
               for key, held in sorted(a.objects.items()) if key in b.objects and held.differs(b.objects[key])]
    both = sum(1 for key in a.objects if key in b.objects)
    rows = {layer: {label: {"features": side.feature_rows(layer), "index": side.index.count(layer)}
                    for label, side in (("a", a), ("b", b))} for layer in LAYERS}
    hits = []
    if queries:
        searchers = [Searcher(side.index, models) for side in (a, b)]
        filters = Filters(LAYERS)
        for query in queries:
            found = [[h.to_json() for h in s.search(query, k, filters)] for s in searchers]
            hits.append({"query": query, "a": found[0], "b": found[1]})
    return {"a": a.summary(), "b": b.summary(),
            "objects": {"added": added, "removed": removed, "changed": changed, "unchanged": both - len(changed)},
            "rows": rows, "queries": hits}
