"""One step over a batch of object versions: check each (source), then extract and index them (layers).

Every version is handled on its own: one that fails is recorded as failed (dead-lettered on the last
attempt) while the others go on, and the caller learns which failed so the step can be retried for them.
A retry skips versions an earlier attempt already finished.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from mediasift.compute import Compute
from mediasift.inbox import Inbox, State
from mediasift.indexing import LayerOutcome, Stores, index_versions
from mediasift.source import Outcome, object_version, process_version
from mediasift.storage import Storage


@dataclass
class VersionResult:
    source: Outcome | None
    layers: LayerOutcome

    @property
    def failed(self) -> bool:
        return self.layers.state is State.FAILED


def process_batch(inbox: Inbox, storage: Storage, stores: Stores, compute: Compute, version_hashes: list[str], *,
                  run_id: str, attempt: int, max_attempts: int, lease_seconds: float) -> Iterator[VersionResult]:
    """Yields each version's result as soon as it is final, so the caller can report it while the rest of
    the batch is still being extracted."""
    sources: dict[str, Outcome] = {}
    for h in version_hashes:
        try:
            sources[h] = process_version(inbox, storage, h, inbox.latest_kind(h), run_id=run_id, attempt=attempt,
                                         max_attempts=max_attempts, lease_seconds=lease_seconds)
        except Exception as error:  # recorded in the inbox by process_version; the batch goes on
            failed = LayerOutcome(State.FAILED, object_version(inbox.version(h)))
            failed.error = f"{type(error).__name__}: {error}"
            yield VersionResult(None, failed)
    for layers in index_versions(inbox, stores, compute, list(sources), attempt=attempt, max_attempts=max_attempts):
        yield VersionResult(_source_after(sources[layers.version.version_hash], layers), layers)


def _source_after(source: Outcome, layers: LayerOutcome) -> Outcome:
    """The source step only checked the version; its content facts come from the worker that read it, or
    it turned out to be superseded when the worker tried."""
    if source.state is not State.RUNNING:
        return source
    if layers.fetched is None:
        return replace(source, state=layers.state)
    return replace(source, fetched=layers.fetched)
