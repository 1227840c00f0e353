"""Where things are kept: the S3 store itself (s3), Parquet feature tables (the durable record of every
layer) and LanceDB tables (the search index)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mediasift.store.lance import LanceIndex
from mediasift.store.parquet import FeatureTables


@dataclass
class RowStores:
    """The two places a version's rows go: written to both, removed from both."""

    tables: FeatureTables
    index: LanceIndex

    @property
    def analysis_dir(self) -> Path:
        """The batch views' Parquet outputs (and the anomaly reference arrivals are scored against)."""
        return self.tables.root / "analysis"

    @classmethod
    def at(cls, derived_dir: str | Path, lance_uri: str) -> RowStores:
        return cls(FeatureTables(Path(derived_dir)), LanceIndex(lance_uri))
