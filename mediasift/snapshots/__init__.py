"""Snapshots: the bucket, the search index and the feature tables as they were at one moment (DESIGN §8).

On Tigris a snapshot is the bucket's native one (forkable); on other stores a Parquet manifest of object
versions. Either way the LanceDB tables are tagged, the feature-table files kept and the inbox state
recorded, so search and reads can be answered as of the snapshot.
"""

from mediasift.snapshots.record import (
    ForkUnsupported,
    InboxState,
    SnapshotError,
    SnapshotExists,
    SnapshotRecord,
    StoreKind,
    UnknownSnapshot,
)
from mediasift.snapshots.service import Snapshots, store_kind

__all__ = ["ForkUnsupported", "InboxState", "SnapshotError", "SnapshotExists", "SnapshotRecord", "Snapshots",
           "StoreKind", "UnknownSnapshot", "store_kind"]
