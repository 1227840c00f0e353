"""The second step of every object version's run: extract its layers and put the rows where search
finds them, or take them out again when the version was deleted or superseded.

A version becomes `done` only here, after its rows are in the feature tables and the index; if that
newer version supersedes older ones, their rows leave the index in the same step.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from mediasift.compute import Compute, ExtractJob
from mediasift.errors import MediasiftError
from mediasift.extract import Extraction
from mediasift.identity import ObjectVersion
from mediasift.inbox import Inbox, State
from mediasift.layers.rows import LAYERS
from mediasift.source import object_version
from mediasift.storage import Fetched
from mediasift.store.lance import TEXT_DIM, LanceIndex
from mediasift.store.parquet import FeatureTables
from mediasift.store.records import to_arrow

log = logging.getLogger(__name__)


@dataclass
class LayerOutcome:
    state: State
    version: ObjectVersion
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LAYERS, 0))
    indexed_rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LAYERS, 0))
    extractors: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    visual_untrained: bool = False
    modality: str | None = None
    removed_rows: int = 0
    fetched: Fetched | None = None
    error: str | None = None


@dataclass
class Stores:
    tables: FeatureTables
    index: LanceIndex


INDEX_FLUSH = 16
"""Extracted versions per index write: few enough that a batch run reports its first objects within
seconds, many enough that each Lance table gets a handful of commits per run, not one per object."""


def index_versions(inbox: Inbox, stores: Stores, compute: Compute, version_hashes: list[str], *, attempt: int,
                   max_attempts: int) -> Iterator[LayerOutcome]:
    """Index a batch of versions, yielding each outcome as soon as it is final. Removals are done first;
    extractions go to `compute` in one call (so a Ray pool works on them in parallel) and are written as
    they finish, every `INDEX_FLUSH` versions, each failure recorded on its own."""
    jobs: list[ExtractJob] = []
    for version_hash in version_hashes:
        record = inbox.version(version_hash)
        if record is None:
            raise MediasiftError(f"version {version_hash} is not in the inbox")
        version = object_version(record)
        if record.state is State.DELETED:
            yield _remove(stores, version, State.DELETED, parquet=True)
        elif record.state is State.SUPERSEDED:
            yield _remove(stores, version, State.SUPERSEDED, parquet=False)
        elif record.state is State.DONE and attempt > 1:
            yield LayerOutcome(State.DONE, version)
        else:
            jobs.append(ExtractJob(version))
    pending = _PendingIndex()
    for results in compute.as_completed(jobs):
        for result in results:
            version = result.job.version
            if result.superseded:
                inbox.mark_superseded(version.version_hash, result.superseded)
                yield _remove(stores, version, State.SUPERSEDED, parquet=False)
            elif result.extraction is None or result.fetched is None:
                yield _failed(inbox, stores, version, result.error or "unknown error", attempt, max_attempts)
            else:
                fetched = result.fetched
                inbox.record_content(version.version_hash, content_type=fetched.content_type,
                                     sha256=fetched.sha256, size=fetched.size)
                outcome = _write_feature_tables(stores, version, result.extraction, pending.tables)
                outcome.fetched = fetched
                pending.outcomes.append(outcome)
        if len(pending.outcomes) >= INDEX_FLUSH:
            yield from pending.flush(inbox, stores)
    yield from pending.flush(inbox, stores)
    for layer in LAYERS:
        if stores.index.ensure_vector_index(layer):
            log.info("vector_index_built layer=%s", layer)


@dataclass
class _PendingIndex:
    """Versions whose feature tables are written and whose searchable rows wait for one index write."""

    outcomes: list[LayerOutcome] = field(default_factory=list)
    tables: dict[str, list[pa.Table]] = field(default_factory=lambda: {layer: [] for layer in LAYERS})

    def flush(self, inbox: Inbox, stores: Stores) -> Iterator[LayerOutcome]:
        if not self.outcomes:
            return
        hashes = [o.version.version_hash for o in self.outcomes]
        for layer, tables in self.tables.items():
            stores.index.replace_versions(layer, hashes, tables)
        outcomes, self.outcomes, self.tables = self.outcomes, [], {layer: [] for layer in LAYERS}
        for outcome in outcomes:
            _mark_done(inbox, stores, outcome)
            yield outcome


def _mark_done(inbox: Inbox, stores: Stores, outcome: LayerOutcome) -> None:
    version = outcome.version
    final, superseded = inbox.mark_done(version.version_hash)
    outcome.state = final
    stale = superseded + ([] if final is State.DONE else [version.version_hash])
    outcome.removed_rows = stores.index.remove_versions(stale)
    log.info("layers_indexed uri=%s etag=%s state=%s rows=%s", version.uri, version.etag, final.value, outcome.rows)


def _failed(inbox: Inbox, stores: Stores, version: ObjectVersion, error: str, attempt: int,
            max_attempts: int) -> LayerOutcome:
    """No partial rows stay behind; the last allowed attempt puts the version in the dead-letter queue."""
    _remove(stores, version, State.FAILED, parquet=True)
    dead_letter = attempt >= max_attempts
    inbox.mark_failed(version.version_hash, error, dead_letter=dead_letter, attempt=attempt)
    log.warning("layers_failed uri=%s etag=%s attempt=%d dlq=%s error=%s", version.uri, version.etag, attempt,
                dead_letter, error)
    outcome = LayerOutcome(State.FAILED, version)
    outcome.error = error
    return outcome


def _write_feature_tables(stores: Stores, version: ObjectVersion, extraction: Extraction,
                          indexed: dict[str, list[pa.Table]]) -> LayerOutcome:
    """Write the version's Parquet files; collect its searchable rows for one index write per layer."""
    outcome = LayerOutcome(State.RUNNING, version, extractors=extraction.extractors, seconds=extraction.seconds,
                           visual_untrained=extraction.visual_untrained, modality=extraction.modality.value)
    for layer in LAYERS:
        rows = extraction.rows[layer]
        dim = rows[0].vector.shape[0] if rows and rows[0].vector is not None else TEXT_DIM
        extractor = extraction.extractors.get(layer, "none")
        stores.tables.write(layer, version.object_id, version.version_hash, to_arrow(rows, version, extractor, dim))
        searchable = [r for r in rows if r.indexed]
        if searchable:
            indexed[layer].append(to_arrow(searchable, version, extractor, dim))
        outcome.rows[layer], outcome.indexed_rows[layer] = len(rows), len(searchable)
    return outcome


def _remove(stores: Stores, version: ObjectVersion, state: State, *, parquet: bool) -> LayerOutcome:
    """Deleted (and failed) versions leave every layer; superseded ones leave the index (their feature
    tables stay as history)."""
    removed = stores.index.remove_versions([version.version_hash])
    if parquet:
        for layer in LAYERS:
            stores.tables.remove(layer, version.object_id, version.version_hash)
    log.info("layers_removed uri=%s etag=%s state=%s rows=%d", version.uri, version.etag, state.value, removed)
    return LayerOutcome(state, version, removed_rows=removed)


def stores_from(derived: Path, lance_uri: str) -> Stores:
    return Stores(FeatureTables(derived), LanceIndex(lance_uri))
