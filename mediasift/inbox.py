"""The durable event inbox and the per-version state machine.

Every accepted notification is an `events` row with a monotonically increasing `seq` (the Dagster
sensor's cursor). Every object version is a `versions` row whose state moves
pending → running → done | failed | superseded | deleted. Duplicates of (bucket, key, etag, kind) are
absorbed by a unique key, so at-least-once delivery turns into exactly-once work.

SQLite (WAL, synchronous=FULL: a commit survives power loss) is the default; Postgres when the URL
says so. On Postgres each append takes a
transaction-scoped advisory lock so `seq` order equals commit order: a sensor reading `seq > cursor`
can then never skip a row that commits late.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from mediasift.errors import InboxUnavailable, LockHeld
from mediasift.identity import ObjectVersion, object_id
from mediasift.intake.events import EventKind, NotificationEvent, Source


class State(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SUPERSEDED = "superseded"
    DELETED = "deleted"


FINAL_STATES = (State.SUPERSEDED, State.DELETED)
APPEND_LOCK_ID = 7_316_120_481

metadata = MetaData()

events_table = Table(
    "events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("dedup_key", String(64), nullable=False, unique=True),
    Column("source", String(16), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("bucket", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("etag", String(80), nullable=False),
    Column("version_id", Text),
    Column("version_hash", String(16), nullable=False, index=True),
    Column("size", BigInteger),
    Column("received_at", Float, nullable=False),
    sqlite_autoincrement=True,
)

versions_table = Table(
    "versions",
    metadata,
    Column("version_hash", String(16), primary_key=True),
    Column("object_id", String(16), nullable=False, index=True),
    Column("bucket", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("etag", String(80), nullable=False),
    Column("version_id", Text),
    Column("size", BigInteger),
    Column("state", String(16), nullable=False, index=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("in_dlq", Boolean, nullable=False, default=False),
    Column("first_seq", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_until", Float),
    Column("content_type", String(128)),
    Column("sha256", String(64)),
)

locks_table = Table(
    "locks",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("expires_at", Float, nullable=False),
)


@dataclass(frozen=True)
class InboxEvent:
    seq: int
    source: str
    kind: EventKind
    bucket: str
    key: str
    etag: str
    version_id: str | None
    version_hash: str
    size: int | None
    received_at: float


@dataclass(frozen=True)
class VersionRecord:
    version_hash: str
    object_id: str
    bucket: str
    key: str
    etag: str
    version_id: str | None
    size: int | None
    state: State
    attempts: int
    last_error: str | None
    in_dlq: bool
    first_seq: int
    created_at: float
    updated_at: float
    content_type: str | None
    sha256: str | None

    def object_version(self) -> ObjectVersion:
        return ObjectVersion(self.bucket, self.key, self.etag, self.version_id, self.size, self.content_type)


@dataclass(frozen=True)
class AppendResult:
    inserted: int
    duplicates: int


def dedup_key(e: NotificationEvent) -> str:
    """Redrives are never duplicates: each is its own request to try again (its sequencer is unique)."""
    if e.source is Source.REDRIVE:
        discriminator = f"redrive:{e.sequencer}"
    else:
        discriminator = "" if e.etag else (e.version_id or e.sequencer or "")
    parts = (e.bucket, e.key, e.etag, e.kind.value, discriminator)
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Inbox:
    """All reads and writes of inbox state. Safe to share between threads of one process."""

    def __init__(self, url: str):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite and ":///" in url and not url.endswith(":memory:"):
            Path(url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(url)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._insert = sqlite.insert if self.is_sqlite else postgresql.insert
        self._write_lock = threading.Lock() if self.is_sqlite else None
        self._greatest = func.max if self.is_sqlite else func.greatest
        self._insert_event = (
            self._insert(events_table).on_conflict_do_nothing(index_elements=["dedup_key"])
            .returning(events_table.c.seq)
        )
        self._insert_version = self._insert(versions_table).on_conflict_do_nothing(index_elements=["version_hash"])
        try:
            metadata.create_all(self.engine)
        except DBAPIError as error:
            raise InboxUnavailable(f"cannot open the inbox at {self.engine.url!r}: {error.orig}") from error

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except OperationalError as error:
            raise InboxUnavailable(f"inbox read failed: {error.orig}") from error

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction; serialised in-process on SQLite (its busy handler sleeps in coarse
        steps, which would wreck tail latency under concurrent requests)."""
        try:
            if self._write_lock is None:
                with self.engine.begin() as conn:
                    yield conn
            else:
                with self._write_lock, self.engine.begin() as conn:
                    yield conn
        except OperationalError as error:
            raise InboxUnavailable(f"inbox write failed: {error.orig}") from error

    def append(self, events: Iterable[NotificationEvent]) -> AppendResult:
        """Store all events in one transaction; duplicates are absorbed. Deletes without an ETag
        are resolved to the newest live version of their key."""
        return self.append_groups([list(events)])[0]

    def append_groups(self, groups: list[list[NotificationEvent]]) -> list[AppendResult]:
        """Several requests' events in one transaction (one fsync), each group counted on its own."""
        now = time.time()
        results = []
        with self._write() as conn:
            self._lock_appends(conn)
            for events in groups:
                inserted = 0
                for e in events:
                    inserted += self._append_one(conn, e, now)
                results.append(AppendResult(inserted, len(events) - inserted))
        return results

    def _lock_appends(self, conn: Connection) -> None:
        """On Postgres, appends commit one at a time, so events become visible in `seq` order and a reader's
        cursor never passes one still being written (SQLite serialises every write anyway)."""
        if not self.is_sqlite:
            conn.execute(select(func.pg_advisory_xact_lock(APPEND_LOCK_ID)))

    def _append_one(self, conn: Connection, e: NotificationEvent, now: float) -> bool:
        if e.kind is EventKind.DELETED and not e.etag:
            e = self._resolve_delete(conn, e)
        seq = conn.execute(self._insert_event, {
            "dedup_key": dedup_key(e), "source": e.source.value, "kind": e.kind.value, "bucket": e.bucket,
            "key": e.key, "etag": e.etag, "version_id": e.version_id, "version_hash": e.version_hash,
            "size": e.size, "received_at": now,
        }).scalar_one_or_none()
        if seq is None:
            return False
        conn.execute(self._insert_version, {
            "version_hash": e.version_hash, "object_id": object_id(e.bucket, e.key), "bucket": e.bucket,
            "key": e.key, "etag": e.etag, "version_id": e.version_id, "size": e.size,
            "state": State.PENDING.value, "attempts": 0, "in_dlq": False, "first_seq": seq,
            "created_at": now, "updated_at": now,
        })
        return True

    def _resolve_delete(self, conn: Connection, e: NotificationEvent) -> NotificationEvent:
        row = conn.execute(
            select(versions_table.c.etag, versions_table.c.version_id)
            .where(versions_table.c.object_id == object_id(e.bucket, e.key))
            .where(versions_table.c.state.not_in([s.value for s in FINAL_STATES]))
            .order_by(versions_table.c.first_seq.desc())
            .limit(1)
        ).first()
        if row is None:
            return e
        return NotificationEvent(e.source, e.kind, e.bucket, e.key, row.etag, version_id=row.version_id,
                                 size=e.size, sequencer=e.sequencer)

    def events_after(self, seq: int, limit: int) -> list[InboxEvent]:
        with self._read() as conn:
            rows = conn.execute(
                select(events_table).where(events_table.c.seq > seq).order_by(events_table.c.seq).limit(limit)
            ).all()
        return [
            InboxEvent(r.seq, r.source, EventKind(r.kind), r.bucket, r.key, r.etag, r.version_id,
                       r.version_hash, r.size, r.received_at)
            for r in rows
        ]

    def last_seq(self) -> int:
        with self._read() as conn:
            return conn.execute(select(func.coalesce(func.max(events_table.c.seq), 0))).scalar_one()

    def version(self, version_hash_: str) -> VersionRecord | None:
        with self._read() as conn:
            row = conn.execute(
                select(versions_table).where(versions_table.c.version_hash == version_hash_)
            ).first()
        return _version(row) if row else None

    def versions(self, version_hashes: list[str]) -> dict[str, VersionRecord]:
        """The known ones of these versions, in one query per 500 (for callers that poll many)."""
        found: dict[str, VersionRecord] = {}
        with self._read() as conn:
            for i in range(0, len(version_hashes), 500):
                chunk = version_hashes[i:i + 500]
                for row in conn.execute(select(versions_table).where(versions_table.c.version_hash.in_(chunk))):
                    found[row.version_hash] = _version(row)
        return found

    def versions_of(self, bucket: str, key: str) -> list[VersionRecord]:
        with self._read() as conn:
            rows = conn.execute(
                select(versions_table)
                .where(versions_table.c.object_id == object_id(bucket, key))
                .order_by(versions_table.c.first_seq)
            ).all()
        return [_version(r) for r in rows]

    def live_versions(self, bucket: str) -> list[VersionRecord]:
        """Versions the inbox believes exist in the bucket (not deleted, not superseded)."""
        with self._read() as conn:
            rows = conn.execute(
                select(versions_table)
                .where(versions_table.c.bucket == bucket)
                .where(versions_table.c.state.not_in([s.value for s in FINAL_STATES]))
            ).all()
        return [_version(r) for r in rows]

    def claim(self, version_hash_: str, owner: str, lease_seconds: float) -> bool:
        """Take the lease on a version and count an attempt; False when another run holds it."""
        now = time.time()
        v = versions_table.c
        with self._write() as conn:
            result = conn.execute(
                update(versions_table)
                .where(v.version_hash == version_hash_)
                .where((v.lease_until.is_(None)) | (v.lease_until < now) | (v.lease_owner == owner))
                .values(state=State.RUNNING.value, lease_owner=owner, lease_until=now + lease_seconds,
                        attempts=v.attempts + 1, updated_at=now)
            )
        return result.rowcount == 1

    def _finish(self, conn: Connection, version_hash_: str, **values: object) -> None:
        conn.execute(
            update(versions_table)
            .where(versions_table.c.version_hash == version_hash_)
            .values(lease_owner=None, lease_until=None, updated_at=time.time(), **values)
        )

    def record_content(self, version_hash_: str, *, content_type: str, sha256: str, size: int) -> None:
        """What reading the bytes established; the version stays running until its layers are indexed."""
        with self._write() as conn:
            conn.execute(update(versions_table).where(versions_table.c.version_hash == version_hash_)
                         .values(content_type=content_type, sha256=sha256, size=size, updated_at=time.time()))

    def mark_done(self, version_hash_: str) -> tuple[State, list[str]]:
        """Record a fully indexed version. The newest done version of a key (by event order) is current:
        older done versions become superseded, and a version that finishes after a newer one's is itself
        superseded. Returns this version's final state and the versions it superseded."""
        record = self.version(version_hash_)
        if record is None:
            raise KeyError(version_hash_)
        v = versions_table.c
        same_key_done = (v.object_id == record.object_id) & (v.version_hash != version_hash_) & (
            v.state == State.DONE.value)
        with self._write() as conn:
            newer = conn.execute(
                select(func.count()).where(same_key_done).where(v.first_seq > record.first_seq)
            ).scalar_one()
            state = State.SUPERSEDED if newer else State.DONE
            self._finish(conn, version_hash_, state=state.value, in_dlq=False,
                         last_error="a newer version finished first" if newer else None)
            older = conn.execute(
                select(v.version_hash).where(same_key_done).where(v.first_seq < record.first_seq)
            ).scalars().all()
            if older:
                conn.execute(update(versions_table).where(v.version_hash.in_(older))
                             .values(state=State.SUPERSEDED.value, updated_at=time.time()))
        return state, list(older)

    def mark_superseded(self, version_hash_: str, reason: str) -> None:
        with self._write() as conn:
            self._finish(conn, version_hash_, state=State.SUPERSEDED.value, last_error=reason)

    def mark_deleted(self, version_hash_: str) -> None:
        with self._write() as conn:
            self._finish(conn, version_hash_, state=State.DELETED.value)

    def mark_failed(self, version_hash_: str, error: str, *, dead_letter: bool, attempt: int = 0) -> None:
        """`attempt`: the attempt that failed, so `attempts` shows it even when a later step failed."""
        with self._write() as conn:
            self._finish(conn, version_hash_, state=State.FAILED.value, last_error=error[:4000],
                         in_dlq=dead_letter, attempts=self._greatest(versions_table.c.attempts, attempt))

    def dead_letters(self, bucket: str | None = None) -> list[VersionRecord]:
        """Versions that failed every attempt, oldest failure first."""
        v = versions_table.c
        query = select(versions_table).where(v.in_dlq.is_(True)).order_by(v.updated_at)
        if bucket:
            query = query.where(v.bucket == bucket)
        with self._read() as conn:
            return [_version(r) for r in conn.execute(query).all()]

    def redrive(self, version_hashes: list[str]) -> list[VersionRecord]:
        """Send dead-lettered versions through the pipeline again, each with a fresh set of attempts: a new
        inbox event per version (a new run key, since a failed run is never requested again by the same
        one) and the version back to pending, in one transaction. Versions not in the DLQ are left alone;
        returns the ones redriven."""
        now = time.time()
        v = versions_table.c
        with self._write() as conn:
            self._lock_appends(conn)
            rows = conn.execute(select(versions_table).where(v.version_hash.in_(version_hashes))
                                .where(v.in_dlq.is_(True))).all()
            for row in rows:
                self._append_one(conn, NotificationEvent(
                    Source.REDRIVE, EventKind.CREATED, row.bucket, row.key, row.etag, version_id=row.version_id,
                    size=row.size, sequencer=uuid.uuid4().hex), now)
            conn.execute(update(versions_table).where(v.version_hash.in_([r.version_hash for r in rows]))
                         .values(state=State.PENDING.value, in_dlq=False, attempts=0, lease_owner=None,
                                 lease_until=None, updated_at=now))
        return [_version(r) for r in rows]

    def purge(self, version_hashes: list[str]) -> int:
        """Take versions out of the DLQ without trying again: they stay failed, with their last error."""
        v = versions_table.c
        with self._write() as conn:
            return conn.execute(update(versions_table).where(v.version_hash.in_(version_hashes))
                                .where(v.in_dlq.is_(True)).values(in_dlq=False, updated_at=time.time())).rowcount

    def counts(self) -> dict[str, int]:
        """Versions per state, plus `dlq` (failed versions that used all their attempts)."""
        v = versions_table.c
        with self._read() as conn:
            rows = conn.execute(select(v.state, func.count()).group_by(v.state)).all()
            dlq = conn.execute(select(func.count()).where(v.in_dlq.is_(True))).scalar_one()
        counts = Counter({state.value: 0 for state in State})
        counts.update(dict(rows))
        return {**counts, "dlq": dlq}

    def depth(self) -> int:
        """Versions waiting for a run: the backlog the receiver guards with 429."""
        with self._read() as conn:
            return conn.execute(
                select(func.count()).where(versions_table.c.state == State.PENDING.value)
            ).scalar_one()

    @contextmanager
    def lock(self, name: str, owner: str, ttl_seconds: float) -> Iterator[None]:
        """A named lock row with an expiry (so a crashed holder cannot block forever)."""
        now = time.time()
        with self._write() as conn:
            conn.execute(delete(locks_table).where(locks_table.c.name == name)
                         .where(locks_table.c.expires_at < now))
            taken = conn.execute(
                self._insert(locks_table)
                .values(name=name, owner=owner, expires_at=now + ttl_seconds)
                .on_conflict_do_nothing(index_elements=["name"])
                .returning(locks_table.c.name)
            ).scalar_one_or_none()
        if taken is None:
            raise LockHeld(f"lock {name!r} is held by another process")
        try:
            yield
        finally:
            with self._write() as conn:
                conn.execute(delete(locks_table).where(locks_table.c.name == name)
                             .where(locks_table.c.owner == owner))

    def ping(self) -> None:
        with self._read() as conn:
            conn.execute(text("SELECT 1"))


def _version(row) -> VersionRecord:
    return VersionRecord(
        version_hash=row.version_hash, object_id=row.object_id, bucket=row.bucket, key=row.key,
        etag=row.etag, version_id=row.version_id, size=row.size, state=State(row.state),
        attempts=row.attempts, last_error=row.last_error, in_dlq=bool(row.in_dlq), first_seq=row.first_seq,
        created_at=row.created_at, updated_at=row.updated_at, content_type=row.content_type,
        sha256=row.sha256,
    )

