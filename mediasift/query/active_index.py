"""Which index search reads: the live one, or a namespace a replay filled (`mediasift index use`, DESIGN §8).

A replay re-derives a snapshot's versions into a namespace beside the live index (after a model change, say);
`mediasift index use NAMESPACE` then cuts search over to it, and `mediasift index use live` rolls back. The
choice is one small file, `<derived>/index.json`, beside the namespaces it names. Every search path (the CLI's
local search, the receiver's /search) asks `active_index` on each query, so a cut-over or a rollback reaches a
running receiver on its next query, without a restart.

The choice moves search only. Ingest, the sensor's runs and the reconcile sweep keep writing the live index,
so while a namespace is in use, search does not see objects uploaded since its snapshot; `index use live`
brings them back. `search --as-of SNAPSHOT` reads the snapshot's pinned live tables whatever is in use.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from mediasift.config import Settings
from mediasift.errors import MediasiftError
from mediasift.snapshots.namespace import LIVE, Namespace, NamespaceRecord
from mediasift.snapshots.replay import FINISHED

INDEX_FILE = "index.json"


class IndexChoiceError(MediasiftError):
    """The index chosen for search cannot be used; the message says which and what to run instead."""


@dataclass(frozen=True)
class ActiveIndex:
    """The index search reads now."""

    name: str
    """`live`, or the namespace's name."""
    lance_uri: str
    chosen_at: str | None
    """When `index use` chose it; None for the live index nobody moved search away from."""
    snapshot: str | None = None
    """The snapshot whose versions the namespace holds; None for the live index."""

    @property
    def is_live(self) -> bool:
        return self.name == LIVE

    def to_json(self) -> dict:
        return asdict(self)


def index_file(settings: Settings) -> Path:
    return settings.derived_path / INDEX_FILE


def active_index(settings: Settings) -> ActiveIndex:
    """The index `index use` chose (the live one when nothing was chosen). A chosen namespace that has since
    been removed is an error, not a silent return to live: search would answer from another index than the
    one the user picked."""
    path = index_file(settings)
    try:
        choice = json.loads(path.read_text())
        name, chosen_at = choice["namespace"], choice["chosen_at"]
    except FileNotFoundError:
        return ActiveIndex(LIVE, settings.lance_location, None)
    except (ValueError, KeyError, TypeError) as error:
        raise IndexChoiceError(f"{path} does not say which index to search ({error!r}); "
                               "`mediasift index use live` (or NAMESPACE) writes it again") from error
    if name == LIVE:
        return ActiveIndex(LIVE, settings.lance_location, chosen_at)
    namespace = Namespace.of(settings, name)
    record = namespace.read()
    if record is None:
        raise IndexChoiceError(f"search is set to namespace {name!r} ({path}), which is gone from {namespace.folder}; "
                               "`mediasift index use live` searches the live index again")
    return ActiveIndex(name, namespace.lance_uri, chosen_at, record.snapshot)


def active_lance_location(settings: Settings) -> str:
    """Where the search paths open their LanceDB tables: the one place that honours `index use`."""
    return active_index(settings).lance_uri


def use(settings: Settings, name: str) -> ActiveIndex:
    """Point search at namespace `name` (or back at `live`). A namespace is refused unless its replay has
    finished with every version in place, so a cut-over never serves a half-filled index."""
    if name != LIVE:
        record = Namespace.of(settings, name).get()
        problem = unfinished(record)
        if problem:
            raise IndexChoiceError(f"namespace {name!r} is not ready for search: {problem}; run `mediasift replay "
                                   f"--snapshot {record.snapshot} --into {name}` again to finish it")
    _write(index_file(settings), {"namespace": name, "chosen_at": datetime.now(UTC).isoformat()})
    return active_index(settings)


def unfinished(record: NamespaceRecord) -> str | None:
    """Why a namespace does not hold all its snapshot's versions yet; None when it does."""
    if record.finished_at is None:
        return "its replay has not finished (still running, or interrupted)"
    ready = sum(record.states.get(state.value, 0) for state in FINISHED)
    if ready < record.versions:
        held = ", ".join(f"{n} {state}" for state, n in record.states.items()) or "none run"
        return f"{ready} of its {record.versions} versions are in place ({held})"
    return None


def _write(path: Path, choice: dict) -> None:
    """Under a temporary name, then renamed: a search reading meanwhile sees the old choice or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(choice, indent=2))
    os.replace(partial, path)
