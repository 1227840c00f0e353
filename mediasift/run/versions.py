"""One run over object versions (one, or a batch): for each, check, read, extract, index and record.

- **check**: HEAD the key. A version overwritten since its event is superseded, a key that is gone (or a
  delete event) is deleted; neither is extracted. Otherwise the run claims the version's lease.
- **read + extract**: a worker (inline, or a Ray actor) reads the exact notified version (If-Match on the
  ETag, or its VersionId), hashing and sniffing it as it streams, and extracts every layer that fits.
  Bytes no layer takes end `unsupported`, with the reason.
- **gate**: the rows must meet what search expects of them (`mediasift.store.expectations`: their lineage,
  the configured models' vector sizes) before anything of them is written. A version whose rows do not is
  written nowhere and dead-lettered at once (the extractor would make the same rows again), with the
  expectation and the numbers as its reason.
- **index**: the rows go to the Parquet feature tables, then, every `INDEX_FLUSH` versions, to the
  LanceDB tables in one write per layer.
- **record**: the version's final state goes to the inbox, the only place state changes. The object-table
  row carries the verdicts the version got at arrival: duplicate, anomaly score, and the flags of the
  taxonomy's rules, which the caller sends as alerts.

Every version is handled on its own: one that fails is recorded as failed (dead-lettered on the last
attempt) while the others go on, and leaves no rows behind. A retry skips versions an earlier attempt
finished. Results are yielded as soon as they are final, so a batch run reports its first objects while
the workers are still on the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa

from mediasift.analysis.arrival import ArrivalJudge
from mediasift.analysis.objects import OBJECTS, ObjectRecord
from mediasift.analysis.taxonomy import RuleSpec
from mediasift.analysis.views import load_reference
from mediasift.errors import LockHeld, MediasiftError
from mediasift.extraction.compute import Compute
from mediasift.extraction.layers.rows import LAYERS
from mediasift.identity import ObjectVersion
from mediasift.inbox import Inbox, State
from mediasift.intake.events import EventKind
from mediasift.store import RowStores
from mediasift.store.expectations import RowExpectations, Verdict
from mediasift.store.records import to_arrow
from mediasift.store.s3 import Fetched, ObjectStore

if TYPE_CHECKING:
    from mediasift.extraction.extract import Extraction

log = logging.getLogger(__name__)

INDEX_FLUSH = 16
"""Extracted versions per index write: few enough that a batch run reports its first objects within
seconds, many enough that each Lance table gets a handful of commits per run, not one per object."""


@dataclass(frozen=True)
class Attempt:
    """Which try of the run this is, and the facts that decide retries and the dead-letter queue."""

    run_id: str
    number: int
    max_attempts: int
    lease_seconds: float

    @property
    def is_last(self) -> bool:
        return self.number >= self.max_attempts


@dataclass
class VersionResult:
    """What one version's run came to: its final state and, when it was extracted, what it yielded."""

    version: ObjectVersion
    state: State
    reason: str | None = None
    """Why it is superseded, deleted, unsupported, skipped or failed (the error)."""
    fetched: Fetched | None = None
    modality: str | None = None
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LAYERS, 0))
    indexed_rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LAYERS, 0))
    extractors: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    removed_rows: int = 0
    permanent: bool = False
    """A failure no retry can fix (it went to the dead-letter queue at once)."""
    verdicts: dict[str, object] = field(default_factory=dict)
    """What the object got at arrival: duplicate_of, duplicate_reason, anomaly_score, anomaly_flagged."""
    flags: list[dict] = field(default_factory=list)
    """The rules it tripped at arrival: rule, reason, id (the alert's idempotency id), at."""
    stopped: list[Verdict] = field(default_factory=list)
    """The expectations its rows failed at the gate: why none of them was written."""

    @property
    def failed(self) -> bool:
        return self.state is State.FAILED

    @property
    def removed(self) -> bool:
        return self.state in (State.DELETED, State.SUPERSEDED)


def run_versions(inbox: Inbox, storage: ObjectStore, stores: RowStores, compute: Compute, version_hashes: list[str],
                 kind: EventKind, attempt: Attempt, expected: RowExpectations,
                 rules: Sequence[RuleSpec] = ()) -> Iterator[VersionResult]:
    """`kind` is the event the sensor gave the run: a delete removes the version without reading the store.
    `expected` is what the gate holds each version's rows to (from the settings that chose the models).
    `rules` (the taxonomy's) are evaluated over each extracted version."""
    to_extract: list[ObjectVersion] = []
    arrived: dict[str, int] = {}
    for version_hash in version_hashes:
        record = inbox.version(version_hash)
        if record is None:
            raise MediasiftError(f"version {version_hash} is not in the inbox")
        version = record.object_version()
        if attempt.number > 1 and record.state is State.DONE:
            yield VersionResult(version, State.DONE, reason="already indexed by an earlier attempt")
        elif attempt.number > 1 and record.in_dlq:
            yield VersionResult(version, State.FAILED, reason=record.last_error, permanent=True)
        elif kind is EventKind.DELETED:
            inbox.mark_deleted(version_hash)
            yield _removed(stores, version, State.DELETED, "delete event")
        elif (checked := _check(inbox, storage, stores, version, attempt)) is not None:
            yield checked
        else:
            to_extract.append(version)
            arrived[version_hash] = record.first_seq
    judge = ArrivalJudge(stores.tables, lambda: load_reference(stores.analysis_dir, "visual"), rules)
    yield from _extract_and_index(inbox, stores, compute, to_extract, attempt, expected, _Arrival(judge, arrived))


def _check(inbox: Inbox, storage: ObjectStore, stores: RowStores, version: ObjectVersion,
           attempt: Attempt) -> VersionResult | None:
    """Claim the version and confirm it is still the key's current one; None when it is to be extracted."""
    if not inbox.claim(version.version_hash, attempt.run_id, attempt.lease_seconds):
        held = LockHeld(f"{version.uri} (etag {version.etag}) is being processed by another run")
        return VersionResult(version, State.FAILED, reason=f"{type(held).__name__}: {held}")
    try:
        head = storage.head(version.bucket, version.key)
    except Exception as error:
        return _failed(inbox, stores, version, f"{type(error).__name__}: {error}", attempt)
    if head is None:
        inbox.mark_deleted(version.version_hash)
        return _removed(stores, version, State.DELETED, "object no longer exists")
    if not version.version_id and head.etag != version.etag:
        reason = f"current etag is {head.etag}"
        inbox.mark_superseded(version.version_hash, reason)
        return _removed(stores, version, State.SUPERSEDED, reason)
    return None


@dataclass
class _Arrival:
    judge: ArrivalJudge
    seq: dict[str, int]
    """Each version's arrival: its first inbox sequence number."""


def _extract_and_index(inbox: Inbox, stores: RowStores, compute: Compute, versions: list[ObjectVersion],
                       attempt: Attempt, expected: RowExpectations, arrival: _Arrival) -> Iterator[VersionResult]:
    """Extraction goes to `compute` in one call (so a Ray pool works on all of it in parallel); results are
    gated and written as they come back, and indexed every `INDEX_FLUSH` versions."""
    pending = _PendingIndex()
    for extractions in compute.as_completed(versions):
        for extraction in extractions:
            version = extraction.version
            if extraction.superseded:
                inbox.mark_superseded(version.version_hash, extraction.superseded)
                yield _removed(stores, version, State.SUPERSEDED, extraction.superseded)
            elif extraction.error or extraction.fetched is None:
                yield _failed(inbox, stores, version, extraction.error or "no bytes were read", attempt,
                              extraction.permanent)
            else:
                fetched = extraction.fetched
                inbox.record_content(version.version_hash, content_type=fetched.content_type,
                                     sha256=fetched.sha256, size=fetched.size)
                if extraction.unsupported:
                    yield _record_done(inbox, stores, VersionResult(
                        version, State.UNSUPPORTED, reason=extraction.unsupported, fetched=fetched,
                        modality=extraction.modality.value))
                elif (staged := _stage(extraction, expected)).stopped:
                    yield _stopped(inbox, stores, version, staged.stopped, attempt)
                else:
                    pending.results.append(_write_feature_tables(stores, extraction, staged, pending.tables, arrival))
        if len(pending.results) >= INDEX_FLUSH:
            yield from pending.flush(inbox, stores, attempt)
    yield from pending.flush(inbox, stores, attempt)
    _maintain_index(stores)


def _maintain_index(stores: RowStores) -> None:
    """Once a run's versions are recorded: build a layer's vector index once it is big enough, and compact a
    table of many small writes. A failed compaction leaves the table as it was, so it is logged and left to
    the next run."""
    for layer in LAYERS:
        if stores.index.ensure_vector_index(layer):
            log.info("vector_index_built layer=%s", layer)
        try:
            if stores.index.compact(layer):
                log.info("index_compacted layer=%s", layer)
        except Exception as error:
            log.warning("index_compaction_failed layer=%s error=%s: %s", layer, type(error).__name__, error)


@dataclass
class _PendingIndex:
    """Versions whose feature tables are written and whose searchable rows wait for one index write."""

    results: list[VersionResult] = field(default_factory=list)
    tables: dict[str, list[pa.Table]] = field(default_factory=lambda: {layer: [] for layer in LAYERS})

    def flush(self, inbox: Inbox, stores: RowStores, attempt: Attempt) -> Iterator[VersionResult]:
        """One index write per layer for every pending version. A write that fails (a full disk, a store
        refusing it) fails all of them cleanly: the layers already written for them are removed again, and
        so are their feature-table rows, so nothing half-indexed stays searchable until the retry."""
        if not self.results:
            return
        hashes = [r.version.version_hash for r in self.results]
        results, tables = self.results, self.tables
        self.results, self.tables = [], {layer: [] for layer in LAYERS}
        try:
            for layer, layer_tables in tables.items():
                stores.index.replace_versions(layer, hashes, layer_tables)
        except Exception as error:
            reason = f"index write failed: {type(error).__name__}: {error}"
            for result in results:
                yield _failed(inbox, stores, result.version, reason, attempt)
            return
        for result in results:
            yield _record_done(inbox, stores, result)


def _record_done(inbox: Inbox, stores: RowStores, result: VersionResult) -> VersionResult:
    """The newest version of a key wins (by event order): what it supersedes leaves the index, and so does
    this version when a newer one finished first. An unsupported version wins too (it has no rows): the
    key no longer holds what the older rows describe."""
    version = result.version
    unsupported = result.reason if result.state is State.UNSUPPORTED else None
    result.state, superseded = inbox.mark_done(version.version_hash, unsupported=unsupported)
    stale = superseded + ([] if result.state is not State.SUPERSEDED else [version.version_hash])
    result.removed_rows = stores.index.remove_versions(stale)
    log.info("layers_indexed uri=%s etag=%s state=%s rows=%s", version.uri, version.etag, result.state.value,
             result.rows)
    return result


def _failed(inbox: Inbox, stores: RowStores, version: ObjectVersion, error: str, attempt: Attempt,
            permanent: bool = False) -> VersionResult:
    """No partial rows stay behind. The last allowed attempt puts the version in the dead-letter queue, and
    so does the first when the error is permanent (corrupt media): retrying cannot fix the bytes."""
    _removed(stores, version, State.FAILED, error)
    dead_letter = permanent or attempt.is_last
    inbox.mark_failed(version.version_hash, error, dead_letter=dead_letter, attempt=attempt.number)
    log.warning("object_failed uri=%s etag=%s attempt=%d dlq=%s permanent=%s error=%s", version.uri, version.etag,
                attempt.number, dead_letter, permanent, error)
    return VersionResult(version, State.FAILED, reason=error, permanent=permanent)


@dataclass
class _Staged:
    """One version's rows as the stores are given them, by layer: all of them for its feature table, the
    searchable ones for the index (absent where the layer has none); or what stopped them at the gate."""

    features: dict[str, pa.Table] = field(default_factory=dict)
    searchable: dict[str, pa.Table] = field(default_factory=dict)
    stopped: list[Verdict] = field(default_factory=list)

    def tables(self) -> dict[str, list[pa.Table]]:
        return {layer: [table, *([self.searchable[layer]] if layer in self.searchable else [])]
                for layer, table in self.features.items()}


def _stage(extraction: Extraction, expected: RowExpectations) -> _Staged:
    """The gate: vectors judged on the extractor's rows (no table is built of rows that fail), lineage on the
    tables built from them, where it is added."""
    stopped = expected.failed_vectors(extraction.rows)
    if stopped:
        return _Staged(stopped=stopped)
    version = extraction.version
    staged = _Staged()
    for layer in LAYERS:
        rows = extraction.rows[layer]
        extractor = extraction.extractors.get(layer, "none")
        staged.features[layer] = to_arrow(rows, version, extractor)
        searchable = [r for r in rows if r.indexed]
        if searchable:
            staged.searchable[layer] = to_arrow(searchable, version, extractor)
    staged.stopped = expected.failed_lineage(version, staged.tables())
    return staged


def _stopped(inbox: Inbox, stores: RowStores, version: ObjectVersion, verdicts: list[Verdict],
             attempt: Attempt) -> VersionResult:
    """Stopped at the gate: the version fails with nothing of it written (rows an earlier run wrote for it
    leave too, as for any failure), into the dead-letter queue at once, since its extractor would make the
    same rows again; a re-drive once that is fixed indexes it."""
    result = _failed(inbox, stores, version, "; ".join(v.reason for v in verdicts), attempt, permanent=True)
    result.stopped = verdicts
    return result


def _write_feature_tables(stores: RowStores, extraction: Extraction, staged: _Staged,
                          indexed: dict[str, list[pa.Table]], arrival: _Arrival) -> VersionResult:
    """Write the version's Parquet files, its object-table row with the verdicts it gets at arrival last;
    collect its searchable rows for one index write per layer."""
    version = extraction.version
    result = VersionResult(version, State.RUNNING, fetched=extraction.fetched, modality=extraction.modality.value,
                           extractors=extraction.extractors, seconds=extraction.seconds)
    for layer in LAYERS:
        stores.tables.write(layer, version.object_id, version.version_hash, staged.features[layer])
        searchable = staged.searchable.get(layer)
        if searchable is not None:
            indexed[layer].append(searchable)
        result.rows[layer] = staged.features[layer].num_rows
        result.indexed_rows[layer] = 0 if searchable is None else searchable.num_rows
    fetched = extraction.fetched
    record = arrival.judge.judge(ObjectRecord(
        version, arrival.seq[version.version_hash], extraction.modality.value, fetched.content_type, fetched.size,
        fetched.sha256, extraction.summary), extraction.rows)
    stores.tables.write(OBJECTS, version.object_id, version.version_hash, record.to_arrow())
    result.verdicts, result.flags = record.verdict_facts(), record.flags
    return result


def _removed(stores: RowStores, version: ObjectVersion, state: State, reason: str) -> VersionResult:
    """Deleted (and failed) versions leave every layer; superseded ones leave the index (their feature
    tables stay as history)."""
    removed = stores.index.remove_versions([version.version_hash])
    if state is not State.SUPERSEDED:
        for table in (*LAYERS, OBJECTS):
            stores.tables.remove(table, version.object_id, version.version_hash)
    log.info("layers_removed uri=%s etag=%s state=%s rows=%d", version.uri, version.etag, state.value, removed)
    return VersionResult(version, state, reason=reason, removed_rows=removed)
