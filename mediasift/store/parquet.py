"""Per-layer Parquet feature tables: `<root>/<layer>/object_id=<id>/<version hash>.parquet`.

Writes go to a temporary name and are renamed into place, so a reader never sees half a file and a
re-run of a version replaces its file whole.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    import polars as pl


class FeatureTables:
    def __init__(self, root: Path):
        self.root = root

    def path(self, layer: str, object_id: str, version_hash: str) -> Path:
        return self.root / layer / f"object_id={object_id}" / f"{version_hash}.parquet"

    def write(self, layer: str, object_id: str, version_hash: str, table: pa.Table) -> Path | None:
        """A version with no rows in the layer gets no file (and loses the one an earlier run of it wrote):
        most objects have rows in two or three of the layers, and a file per layer per object was a third of a
        batch run's CPU."""
        if not table.num_rows:
            self.remove(layer, object_id, version_hash)
            return None
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

    def scan(self, layer: str, schema: pa.Schema | None = None) -> pl.LazyFrame | None:
        """Every version's rows of `layer`, lazily, for batch views and notebooks (None when there are none).
        Empty files (written by earlier releases for versions with no rows in the layer) are left out: their
        vector size is only a placeholder. Files written before CLIP was configured lack `clip_vector`; it
        reads as null there.

        A layer whose `schema` is known and whose files are never empty (the object table) is scanned without
        first reading every file's footer: that pass was most of an ingest run's arrival state at thousands
        of objects. Columns a file lacks read as null."""
        folder = self.root / layer
        found = sorted(folder.rglob("*.parquet")) if folder.exists() else []
        files = found if schema is not None else [f for f in found if pq.read_metadata(f).num_rows]
        if not files:
            return None
        import polars as pl  # only readers need it; every ingest run imports this module to write

        widest = schema or pa.unify_schemas([pq.read_schema(f) for f in files])
        return pl.scan_parquet(files, hive_partitioning=False, schema=pl.from_arrow(widest.empty_table()).schema,
                               missing_columns="insert")

    def read(self, layer: str) -> pa.Table | None:
        frame = self.scan(layer)
        return None if frame is None else frame.collect().to_arrow()
