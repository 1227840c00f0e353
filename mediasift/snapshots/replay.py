"""Replay: re-materialise exactly a snapshot's object versions into a namespace of their own (DESIGN §8).

The versions go through the same run path as ingest (`mediasift.run.versions.run_versions`: check, read,
extract, index, record), so a namespace's rows are the rows ingest makes for those versions with these
extractors; only the stores differ. What a replay changes is where things are read and written:

- **reads** are pinned to the snapshot: by the manifest's VersionId (bucket versioning on), by If-Match on its
  ETag otherwise (which fails, and is reported, once the object was overwritten), and on Tigris through the
  snapshot version (`X-Tigris-Snapshot-Version`). The run's existence check asks the snapshot too, so an
  object deleted since is still replayed.
- **writes** go to the namespace (`namespace`): its feature tables, Lance tables and inbox. The live index,
  tables and inbox are never opened for writing.

Replaying into a namespace that already holds the same snapshot resumes it: versions done there are skipped,
failed ones are tried again. Rule flags are evaluated (they are part of each object's row) but never sent:
the live run sent them already.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from mediasift.analysis.taxonomy import load_taxonomy
from mediasift.config import Settings
from mediasift.extraction.compute import Compute, InlineCompute, compute_for
from mediasift.identity import ObjectVersion
from mediasift.inbox import Inbox, State
from mediasift.intake.events import EventKind, NotificationEvent, Source
from mediasift.run.versions import Attempt, VersionResult, run_versions
from mediasift.snapshots.manifest import MANIFEST_SCHEMA, ManifestReader, write_parquet
from mediasift.snapshots.namespace import Namespace, NamespaceConflict, NamespaceRecord
from mediasift.snapshots.record import SnapshotError, SnapshotRecord
from mediasift.snapshots.service import Snapshots
from mediasift.snapshots.tigris import TigrisReader
from mediasift.store import RowStores
from mediasift.store.expectations import RowExpectations
from mediasift.store.s3 import Fetched, Head, ObjectStore, _digest_stream

FINISHED = (State.DONE, State.UNSUPPORTED)
"""States a resumed replay does not run again: the version's rows (or its lack of any) are in place."""
REPLAYED_ASSET = ["mediasift", "replayed_version"]
"""The Dagster asset a replay backfill materializes (assets/replay.py), one partition per object version."""
SNAPSHOT_TAG = "mediasift/replay_snapshot"
NAMESPACE_TAG = "mediasift/replay_namespace"
"""A replay backfill's tags, which its runs inherit: what to replay, and into which namespace."""
NOT_REPLAYED = (State.FAILED, State.SUPERSEDED, State.DELETED)
"""States a replayed version ends in when the namespace did not get its rows (a rerun tries it again)."""
NAMESPACE_MANIFEST_SCHEMA = pa.schema([f for f in MANIFEST_SCHEMA if f.name != "last_modified"])


class SnapshotStore(ObjectStore):
    """The bucket as of a snapshot, for the run path: HEAD answers what the snapshot held (so a key deleted
    since still exists here), and reads are pinned to the snapshot's version. Manifest versions are read as
    every run reads them (VersionId, else If-Match); Tigris versions through the snapshot-version header."""

    def __init__(self, client, reader: ManifestReader | TigrisReader):
        super().__init__(client)
        self.reader = reader

    def head(self, bucket: str, key: str) -> Head | None:
        version = self.reader.head(key) if bucket == self.reader.bucket else None
        return None if version is None else Head(version.etag, version.size or 0)

    def read(self, version: ObjectVersion, dest: Path) -> Fetched:
        if not isinstance(self.reader, TigrisReader):
            return super().read(version, dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "wb") as sink:
            return _digest_stream(io.BytesIO(self.reader.read(version.key)), sink)


@dataclass
class ReplayPlan:
    """What a replay will do: every version the snapshot holds, and those not yet done in the namespace."""

    namespace: Namespace
    snapshot: SnapshotRecord
    versions: list[ObjectVersion]
    pending: list[str]
    """Version hashes still to run (all of them, unless an earlier replay into the namespace did some)."""

    def only(self, version_hashes: Iterable[str]) -> ReplayPlan:
        """The same replay, run for these versions alone (a Dagster run's partitions); those done already stay
        skipped. A hash the snapshot does not hold is refused by name, so nothing of the live bucket is read."""
        wanted = set(version_hashes)
        missing = sorted(wanted - {v.version_hash for v in self.versions})
        if missing:
            raise NotInSnapshot(f"snapshot {self.snapshot.name!r} holds no object version {', '.join(missing)}; "
                                f"replay only the versions `mediasift replay --snapshot {self.snapshot.name}` plans")
        return ReplayPlan(self.namespace, self.snapshot, self.versions, [h for h in self.pending if h in wanted])


class NotInSnapshot(SnapshotError):
    """Versions asked for by hash that the snapshot does not hold."""


class Replay:
    """Replays the snapshots of `settings.bucket` into namespaces beside `settings`' live stores."""

    def __init__(self, settings: Settings, snapshots: Snapshots | None = None):
        self.settings = settings
        self.snapshots = snapshots or Snapshots(settings)

    def plan(self, snapshot: str, into: str) -> ReplayPlan:
        """Register the snapshot's versions in the namespace's inbox (a new namespace is made; one holding
        another snapshot is refused) and say which are left to run."""
        record = self.snapshots.get(snapshot)
        namespace = Namespace.of(self.settings, into)
        held = namespace.read()
        if held is not None and (held.snapshot, held.bucket) != (record.name, record.bucket):
            raise NamespaceConflict(f"namespace {into!r} holds snapshot {held.snapshot!r} of bucket {held.bucket!r}; "
                                    f"replay {snapshot!r} into another namespace, or remove {namespace.folder}")
        versions = snapshot_versions(self.snapshots.reader(record.name))
        if held is None:
            namespace.write(NamespaceRecord(into, record.bucket, record.name, datetime.now(UTC).isoformat(),
                                            versions=len(versions)))
            write_parquet(manifest_of(versions), namespace.manifest_path)
        inbox = Inbox(namespace.inbox_url)
        try:
            inbox.append(NotificationEvent(Source.RECONCILE, EventKind.CREATED, v.bucket, v.key, v.etag,
                                           v.version_id, v.size) for v in versions)
            known = inbox.versions([v.version_hash for v in versions])
        finally:
            inbox.close()
        pending = [v.version_hash for v in versions if known[v.version_hash].state not in FINISHED]
        return ReplayPlan(namespace, record, versions, pending)

    def run(self, plan: ReplayPlan, compute: Compute | None = None) -> Iterator[VersionResult]:
        """Each pending version's result as soon as it is final. `compute` defaults to the settings' (inline
        or Ray); a Tigris snapshot is always extracted inline, by a worker that reads through the snapshot."""
        namespace = plan.namespace
        reader = self.snapshots.reader(plan.snapshot.name)
        storage = SnapshotStore(self.snapshots.new_client(), reader)
        owned = compute is None
        if compute is None:
            compute = self._compute(storage)
        inbox = Inbox(namespace.inbox_url)
        rules = load_taxonomy(self.settings.taxonomy).rules if self.settings.taxonomy else ()
        attempt = Attempt(f"replay-{uuid.uuid4().hex}", 1, self.settings.max_attempts, self.settings.lease_seconds)
        try:
            yield from run_versions(inbox, storage, RowStores.at(namespace.derived_dir, namespace.lance_uri, inbox),
                                    compute, plan.pending, EventKind.CREATED, attempt,
                                    RowExpectations.from_settings(self.settings), rules)
        finally:
            states = inbox.versions([v.version_hash for v in plan.versions])
            inbox.close()
            if owned:
                compute.close()
            record = namespace.get()
            record.finished_at = datetime.now(UTC).isoformat()
            record.states = count_states(r.state for r in states.values())
            namespace.write(record)

    def _compute(self, storage: SnapshotStore) -> Compute:
        if not isinstance(storage.reader, TigrisReader):
            return compute_for(self.settings)
        inline = InlineCompute(self.settings)
        inline.worker.storage = storage
        return inline


def snapshot_versions(reader: ManifestReader | TigrisReader) -> list[ObjectVersion]:
    """Every object version the snapshot holds, by key."""
    return [v for key in sorted(reader.keys()) if (v := reader.head(key)) is not None]


def manifest_of(versions: list[ObjectVersion]) -> pa.Table:
    """A namespace's own list of the versions it holds (a Tigris snapshot has no manifest to copy, and a
    manifest's last-modified times are the snapshot's business, not the namespace's)."""
    rows = [{"key": v.key, "version_id": v.version_id, "etag": v.etag, "size": v.size or 0} for v in versions]
    return pa.Table.from_pylist(rows, schema=NAMESPACE_MANIFEST_SCHEMA)


def count_states(states: Iterable[State]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for state in states:
        counts[state.value] = counts.get(state.value, 0) + 1
    return dict(sorted(counts.items()))
