"""Per-layer Parquet feature tables: `<root>/<layer>/object_id=<id>/<version hash>.parquet`.

Writes go to a temporary name and are renamed into place, so a reader never sees half a file and a
re-run of a version replaces its file whole.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


class FeatureTables:
    def __init__(self, root: Path):
        self.root = root

    def path(self, layer: str, object_id: str, version_hash: str) -> Path:
        return self.root / layer / f"object_id={object_id}" / f"{version_hash}.parquet"

    def write(self, layer: str, object_id: str, version_hash: str, table: pa.Table) -> Path:
        path = self.path(layer, object_id, version_hash)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".parquet.partial")
        pq.write_table(table, partial, compression="zstd")
        os.replace(partial, path)
        return path

    def remove(self, layer: str, object_id: str, version_hash: str) -> bool:
        path = self.path(layer, object_id, version_hash)
        existed = path.exists()
        path.unlink(missing_ok=True)
        return existed

    def read(self, layer: str) -> pa.Table | None:
        folder = self.root / layer
        files = sorted(folder.rglob("*.parquet")) if folder.exists() else []
        if not files:
            return None
        return pa.concat_tables([pq.read_table(f) for f in files], promote_options="permissive")
