"""Where things are kept: the S3 store itself (s3), Parquet feature tables (the durable record of every
layer) and LanceDB tables (the search index)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mediasift.store.lance import CreationGuard, LanceIndex
from mediasift.store.parquet import FeatureTables

if TYPE_CHECKING:
    from mediasift.inbox import Inbox


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
    def at(cls, derived_dir: str | Path, lance_uri: str, inbox: Inbox | None = None) -> RowStores:
        """`inbox`: where the processes writing these stores take turns creating an index table (a run
        writes through one; a reader needs none)."""
        guard = None if inbox is None else _creation_guard(inbox)
        return cls(FeatureTables(Path(derived_dir)), LanceIndex(lance_uri, creation_guard=guard))


def _creation_guard(inbox: Inbox) -> CreationGuard:
    return lambda layer: inbox.lock_waiting(f"lance-create:{layer}", ttl_seconds=120, timeout_seconds=300)
