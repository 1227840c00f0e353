"""Take, list and fork snapshots: the bucket, the search index and the feature tables of one moment.

A snapshot is one record under `<derived>/snapshots/<name>/` (the feature-table root, so a namespace's
snapshots travel with its tables, and hard links into them stay on one file system):

- the bucket: on Tigris its native snapshot (a version number); elsewhere a Parquet manifest of every
  current object version (see `manifest`);
- the index: a LanceDB tag on each table's current version (`snapshot-<name>`), which also keeps that
  version's files from cleanup;
- the feature tables: each Parquet file linked into the snapshot folder, and their list;
- the inbox: its last event sequence, backlog and versions per state, which say which events the index
  may not reflect yet.

The parts are taken one after another, not atomically: with ingestion running, objects that arrive
meanwhile can be in the bucket's part and not yet in the index's. The inbox state bounds that.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq

from mediasift.config import Settings
from mediasift.inbox import Inbox
from mediasift.snapshots import tigris
from mediasift.snapshots.manifest import (
    ManifestReader,
    current_versions,
    keep_feature_files,
    write_parquet,
)
from mediasift.snapshots.namespace import namespaces_root
from mediasift.snapshots.record import (
    FEATURES_DIR,
    FEATURES_FILE,
    MANIFEST_FILE,
    ForkUnsupported,
    InboxState,
    SnapshotExists,
    SnapshotRecord,
    StoreKind,
    UnknownSnapshot,
    check_name,
    lance_tag,
    read_record,
    write_record,
)
from mediasift.store.lance import LanceIndex, PinnedIndex, delete_tag, tag_tables


def store_kind(settings: Settings) -> StoreKind:
    """Tigris when the endpoint is Tigris's; every other store gets manifests."""
    return StoreKind.TIGRIS if tigris.is_tigris(settings.s3_endpoint_url) else StoreKind.S3


class Snapshots:
    """The snapshots of one bucket (`settings.bucket`) and one namespace (its feature tables and index)."""

    def __init__(self, settings: Settings, kind: StoreKind | None = None,
                 new_client: tigris.ClientFactory | None = None):
        self.settings = settings
        self.kind = kind or store_kind(settings)
        self.new_client = new_client or tigris.client_factory(settings)
        self.root = settings.derived_path / "snapshots"

    def folder(self, name: str) -> Path:
        return self.root / check_name(name)

    def create(self, name: str) -> SnapshotRecord:
        """Take snapshot `name`; refused when the name is taken. On failure nothing is left behind: the
        tags made are deleted and the folder removed (a Tigris snapshot already taken stays in Tigris, as
        a snapshot mediasift did not record)."""
        folder = self.folder(name)
        if read_record(folder) is not None or (self.kind is StoreKind.TIGRIS and self._remote(name)):
            raise SnapshotExists(f"snapshot {name!r} exists already (of bucket {self.settings.bucket!r}); "
                                 "pick another name (`mediasift snapshot list` shows the taken ones)")
        shutil.rmtree(folder, ignore_errors=True)  # leftovers of a failed attempt, never a recorded one
        folder.mkdir(parents=True)
        index = LanceIndex(self.settings.lance_location)
        tag = lance_tag(name)
        record = SnapshotRecord(name=name, bucket=self.settings.bucket, store=self.kind,
                                created_at=datetime.now(UTC).isoformat(), lance_tag=tag, inbox=self._inbox_state())
        try:
            record.lance_versions = tag_tables(index, tag)
            files = keep_feature_files(self.settings.derived_path, folder / FEATURES_DIR,
                                       skip=(self.root, namespaces_root(self.settings)))
            write_parquet(files, folder / FEATURES_FILE)
            record.feature_files = files.num_rows
            if self.kind is StoreKind.TIGRIS:
                record.tigris_version = tigris.take_snapshot(self.new_client, self.settings.bucket, name)
            else:
                manifest, record.versioned = current_versions(self.new_client(), self.settings.bucket,
                                                              skip_prefix=self.settings.derived_prefix)
                write_parquet(manifest, folder / MANIFEST_FILE)
                record.objects = manifest.num_rows
            write_record(folder, record)
        except BaseException:
            if record.lance_versions:
                delete_tag(index, tag)
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return record

    def list(self) -> list[SnapshotRecord]:
        """Every snapshot of the bucket, oldest first: the recorded ones, and on Tigris also those taken
        outside mediasift (`recorded` false: no index tags or feature files)."""
        found = [r for f in sorted(self.root.iterdir()) if (r := read_record(f))] if self.root.exists() else []
        found = [r for r in found if r.bucket == self.settings.bucket]
        if self.kind is StoreKind.TIGRIS:
            known = {r.tigris_version for r in found}
            found += [SnapshotRecord(name=s["name"] or s["version"], bucket=self.settings.bucket, store=self.kind,
                                     created_at=s["created_at"] or "", tigris_version=s["version"], recorded=False)
                      for s in tigris.list_snapshots(self.new_client, self.settings.bucket)
                      if s["version"] not in known]
        return sorted(found, key=lambda r: r.created_at)

    def get(self, name: str) -> SnapshotRecord:
        record = read_record(self.folder(name))
        if record is None and self.kind is StoreKind.TIGRIS:
            record = next((r for r in self.list() if r.name == name), None)
        if record is None:
            raise UnknownSnapshot(f"no snapshot {name!r} of bucket {self.settings.bucket!r} under {self.root} "
                                  "(`mediasift snapshot list` shows them)")
        return record

    def _remote(self, name: str) -> bool:
        return any(s["name"] == name for s in tigris.list_snapshots(self.new_client, self.settings.bucket))

    def _inbox_state(self) -> InboxState:
        inbox = Inbox(self.settings.inbox_url, read_only=True)
        try:
            return InboxState(last_seq=inbox.last_seq(), depth=inbox.depth(), counts=inbox.counts())
        finally:
            inbox.close()

    def fork(self, name: str, new_bucket: str) -> dict:
        """A new Tigris bucket holding exactly the snapshot's objects (copy on write, instant)."""
        record = self.get(name)
        if record.store is not StoreKind.TIGRIS or record.tigris_version is None:
            raise ForkUnsupported(
                f"snapshot {name!r} is a manifest of bucket {record.bucket!r} ({record.store} store): only Tigris "
                "forks buckets; the manifest's versions can be read (or replayed) by their "
                + ("VersionIds" if record.versioned else "ETags"))
        tigris.fork(self.new_client, record.bucket, record.tigris_version, new_bucket)
        return {"bucket": new_bucket, "source_bucket": record.bucket, "snapshot": name,
                "snapshot_version": record.tigris_version}

    def reader(self, name: str) -> ManifestReader | tigris.TigrisReader:
        """Reads the bucket as of snapshot `name`: `keys()`, `head(key)`, `read(key)`."""
        record = self.get(name)
        if record.tigris_version is not None:
            return tigris.TigrisReader(self.new_client, record.bucket, record.tigris_version)
        manifest = pq.read_table(self.folder(name) / MANIFEST_FILE)
        return ManifestReader(self.new_client(), record.bucket, manifest)

    def index(self, name: str) -> PinnedIndex:
        """The search index as of snapshot `name` (read only)."""
        record = self.get(name)
        if record.lance_tag is None:
            raise UnknownSnapshot(f"snapshot {name!r} was taken outside mediasift: it pins no index version")
        return PinnedIndex(self.settings.lance_location, record.lance_tag)
