"""Client-side ingestion: which key each local file gets, and waiting until uploads are processed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from mediasift.identity import version_hash
from mediasift.inbox import Inbox, State, VersionRecord

SETTLED = (State.DONE, State.FAILED, State.SUPERSEDED, State.DELETED)


@dataclass(frozen=True)
class Upload:
    path: Path
    key: str


def plan_uploads(paths: Iterable[Path], prefix: str = "") -> list[Upload]:
    """A file becomes PREFIX + its name; a directory's files become PREFIX + their path relative to it."""
    plan: list[Upload] = []
    for path in paths:
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                plan.append(Upload(file, prefix + file.relative_to(path).as_posix()))
        elif path.is_file():
            plan.append(Upload(path, prefix + path.name))
        else:
            raise FileNotFoundError(f"no such file or directory: {path}")
    return plan


def wait_settled(inbox: Inbox, bucket: str, uploaded: dict[str, str], *, timeout: float,
                 on_progress: Callable[[int], None] | None = None, poll: float = 0.5) -> dict[str, State | None]:
    """Wait until every uploaded (key → etag) version is done, failed, superseded or deleted.
    Returns each key's last seen state (None: never reached the inbox)."""
    hashes = {key: version_hash(bucket, key, etag) for key, etag in uploaded.items()}
    deadline = time.monotonic() + timeout
    while True:
        records = inbox.versions(list(hashes.values()))
        states = {key: _state(records.get(h)) for key, h in hashes.items()}
        settled = sum(1 for s in states.values() if s in SETTLED)
        if on_progress:
            on_progress(settled)
        if settled == len(states) or time.monotonic() > deadline:
            return states
        time.sleep(poll)


def _state(record: VersionRecord | None) -> State | None:
    if record is None:
        return None
    if record.state is State.FAILED and not record.in_dlq:
        return State.RUNNING
    return record.state
