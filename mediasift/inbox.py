"""The durable event inbox and the per-version state machine.

Every accepted notification is an `events` row with a monotonically increasing `seq` (the Dagster
sensor's cursor). Every object version is a `versions` row whose state moves
pending → running → done | failed | superseded | deleted. Duplicates of (bucket, key, etag, kind) are
absorbed, so at-least-once delivery turns into exactly-once work. What counts as a duplicate follows the
order and repeats senders produce (DESIGN §3, §7):

- A redelivery of one occurrence (the same S3 `sequencer`, the same Tigris event time; for a delete without
  an ETag, the same versionId) is absorbed, whatever has happened since: a POST retried after a timeout,
  or an SNS delete redelivered after the key was written again, changes nothing.
- A create for a version the inbox already holds is absorbed, unless the key was deleted since that
  version's last create: then it is a new arrival (the same bytes uploaded again), and the version is
  pending again with fresh attempts. A redelivered create of a superseded version is absorbed, so an older
  ETag never comes back on its own; whether a new arrival is really there is for its run's HEAD to say.
- A delete of a version already deleted (since its last create) is absorbed. A delete that arrives before
  any create of its version makes that version deleted at once, with nothing live left behind; a create
  that names a versionId whose delete is recorded is absorbed (a deleted version never comes back).
- A delete without an ETag names a version: the one with its versionId, or else the key's newest live
  version. Of a key's finished versions the one that arrived last (its latest create) is current.

SQLite (WAL, synchronous=FULL: a commit survives power loss) is the default; Postgres when the URL
says so. On Postgres each append takes a
transaction-scoped advisory lock so `seq` order equals commit order: a sensor reading `seq > cursor`
can then never skip a row that commits late.

Opening creates the tables if they are absent, under a lock (SQLite `BEGIN IMMEDIATE`, a Postgres advisory
lock), so processes opening one fresh inbox at the same moment all succeed. `Inbox(url, read_only=True)`
creates nothing, not even a missing SQLite file: it reads an inbox that does not exist yet as an empty one.
"""

from __future__ import annotations

import functools
import hashlib
import operator
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from enum import StrEnum
from itertools import chain
from pathlib import Path
from typing import ParamSpec, TypeVar
from urllib.parse import quote

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Engine,
    Float,
    Insert,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.exc import DBAPIError, OperationalError
from tenacity import Retrying, retry_if_exception, retry_if_exception_type, stop_after_delay, wait_random_exponential

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
    UNSUPPORTED = "unsupported"
    """Read, but no layer takes the bytes; `last_error` says why. Final for this version, never retried."""


FINAL_STATES = (State.SUPERSEDED, State.DELETED)
APPEND_LOCK_ID = 7_316_120_481
SCHEMA_LOCK_ID = 7_316_120_482

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

EVENT_COLUMNS = ("dedup_key", "source", "kind", "bucket", "key", "etag", "version_id", "version_hash", "size",
                 "received_at")
VERSION_COLUMNS = ("version_hash", "object_id", "bucket", "key", "etag", "version_id", "size", "state", "attempts",
                   "in_dlq", "first_seq", "created_at", "updated_at")

LAST_SEQ = select(func.coalesce(func.max(events_table.c.seq), 0))

KNOWN_SQL = (
    "SELECT v.object_id, v.version_hash, v.etag, v.version_id, v.state, v.first_seq, e.kind, count(e.seq), "
    "max(e.seq) FROM versions AS v LEFT JOIN events AS e ON e.version_hash = v.version_hash "
    f"AND e.source <> '{Source.REDRIVE.value}' WHERE v.object_id {{object_ids}} GROUP BY v.version_hash, e.kind "
    "UNION ALL SELECT NULL, dedup_key, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM events "
    "WHERE dedup_key {tokens}"
)
"""What an append decides on, in one statement: the stored versions of its keys with how often and when each
was last created and deleted (redrives left out: they are requests to try again, not words about the
object), then, marked by a NULL object_id, which of its occurrence keys are stored already. SQLite's; Postgres
reads the same rows with KNOWN_SQL_POSTGRES."""
KNOWN_SQL_POSTGRES = (
    "SELECT v.object_id, v.version_hash, v.etag, v.version_id, v.state, v.first_seq, e.kind, e.n, e.last "
    "FROM versions AS v LEFT JOIN LATERAL (SELECT kind, count(seq) AS n, max(seq) AS last FROM events "
    f"WHERE version_hash = v.version_hash AND source <> '{Source.REDRIVE.value}' GROUP BY kind) AS e ON true "
    "WHERE v.object_id = ANY(%s::varchar[]) "
    "UNION ALL SELECT NULL, dedup_key, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM events "
    "WHERE dedup_key = ANY(%s::varchar[])"
)
"""KNOWN_SQL's rows on Postgres, each version's events looked up through the version_hash index. A fresh inbox
has no statistics until autovacuum's first ANALYZE (a minute or more); without them the planner scanned every
version (and, in the join form, every event) for each group commit, so a burst's commits slowed as the inbox
grew: 29–37 ms each at about 18,000 events against 3.5 ms after an ANALYZE (16 events a group). The append turns
sequential scans off for its transaction, and this form then needs one index lookup per stored version."""
KNOWN_CHUNK = 500

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


def dedup_key(e: NotificationEvent, generation: int = 0) -> str:
    """The unique key of an event row: the version it is about (a versionId makes its own version, as in
    `version_hash`) and `generation`, how many deletes came before (of the key for a create, of the version
    for a delete), so that an upload after a delete is a new row. The first generation of an unversioned
    event keeps the key inboxes written before generations existed hold. Redrives are never duplicates:
    each is its own request to try again (its sequencer is unique)."""
    if e.source is Source.REDRIVE:
        discriminator = f"redrive:{e.sequencer}"
    else:
        discriminator = f"generation:{generation}" if generation else ""
        if e.version_id:
            discriminator += f"|version:{e.version_id}"
    return _hash_key(e, discriminator)


def occurrence_key(e: NotificationEvent) -> str | None:
    """The key of one occurrence of an event, the same in every redelivery of it: from its sequencer or,
    for a delete without an ETag, the versionId it deletes (the format such deletes were stored with before
    they were resolved). None when the sender gives nothing that tells occurrences apart."""
    if e.source is Source.REDRIVE:
        return None
    if e.kind is EventKind.DELETED and not e.etag:
        token = e.version_id or e.sequencer
        return _hash_key(e, token) if token else None
    return _hash_key(e, f"at:{e.sequencer}") if e.sequencer else None


def _hash_key(e: NotificationEvent, discriminator: str) -> str:
    parts = (e.bucket, e.key, e.etag, e.kind.value, discriminator)
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


PROVISIONAL = 1 << 62
"""Where an append numbers the events it is deciding on (after every stored `seq`), to order them among the
stored ones before the INSERT gives them their real numbers."""


@dataclass(slots=True)
class _VersionView:
    """One version as an append sees it while it decides: its row, and when its last create and delete were
    (0: never)."""

    version_hash: str
    etag: str
    version_id: str | None
    state: State
    first: int
    stored: bool
    last_create: int = 0
    last_delete: int = 0
    deletes: int = 0


@dataclass(slots=True)
class _Decision:
    """An event to insert (as decided: a delete without an ETag resolved), and what it does to its version."""

    group: int
    event: NotificationEvent
    object_id: str
    effect: str
    """"pending": a new version, or one arriving again; "deleted": a delete introducing its version;
    "": the version's row stays as it is (a delete's run will tombstone it)."""
    version: _VersionView | None = None
    """The version as the append saw it (None for a redrive, whose version is stored and left alone)."""


@dataclass(slots=True)
class _KeyView:
    """Everything an append needs to decide on the events of one key: its versions and its deletes without a
    versionId (which end every version of the key)."""

    versions: dict[str, _VersionView]
    deletes: int = 0
    last_delete: int = 0

    def resolve(self, e: NotificationEvent) -> NotificationEvent:
        """A delete without an ETag, named: the version with its versionId (in whatever state), else the
        newest live version; unchanged when there is none."""
        if e.version_id:
            candidates = [v for v in self.versions.values() if v.version_id == e.version_id]
        else:
            candidates = [v for v in self.versions.values() if v.state not in FINAL_STATES]
        if not candidates:
            return e
        v = max(candidates, key=lambda v: v.first)
        return NotificationEvent(e.source, e.kind, e.bucket, e.key, v.etag, version_id=v.version_id,
                                 size=e.size, sequencer=e.sequencer)

    def decide(self, e: NotificationEvent, order: int) -> tuple[int, str] | None:
        """(generation, effect) when the event is new, None when it is a duplicate; updates the view."""
        v = self.versions.get(e.version_hash)
        if e.kind is EventKind.CREATED:
            if e.version_id:
                if any(u.version_id == e.version_id and u.deletes for u in self.versions.values()):
                    return None
                if v is not None and v.last_create:
                    return None
                generation = 0
            else:
                if v is not None and v.last_create > self.last_delete:
                    return None
                generation = self.deletes
            if v is None:
                v = self.versions[e.version_hash] = _VersionView(e.version_hash, e.etag, e.version_id,
                                                                 State.PENDING, order, stored=False)
            v.state, v.last_create = State.PENDING, order
            return generation, "pending"
        if v is not None and v.last_delete > v.last_create:
            return None
        effect = ""
        if v is None:
            v = self.versions[e.version_hash] = _VersionView(e.version_hash, e.etag, e.version_id, State.DELETED,
                                                             order, stored=False)
            effect = "deleted"
        generation = v.deletes
        v.last_delete, v.deletes = order, v.deletes + 1
        if not e.version_id:
            self.deletes, self.last_delete = self.deletes + 1, order
        return generation, effect


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """busy_timeout first, so the switch of a fresh file to WAL waits for a concurrent opener like any write.
    It does not always: two openers that both read the file and then want its exclusive lock meet SQLite's
    deadlock avoidance, which answers one of them "database is locked" at once, without the busy handler;
    that one tries again."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    for attempt in Retrying(retry=retry_if_exception(_sqlite_locked), reraise=True,
                            wait=wait_random_exponential(multiplier=0.01, max=0.2), stop=stop_after_delay(30)):
        with attempt:
            cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _sqlite_locked(error: BaseException) -> bool:
    return isinstance(error, sqlite3.OperationalError) and "database is locked" in str(error)


def _sqlite_read_only(path: Path) -> Callable[[], sqlite3.Connection]:
    """Connections that can neither write nor create the file (`mode=ro`)."""
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"

    def connect() -> sqlite3.Connection:
        connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
        connection.execute("PRAGMA busy_timeout=30000")
        return connection

    return connect


P = ParamSpec("P")
R = TypeVar("R")


def _empty_until_created(empty: Callable[[], R]) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A read-only inbox whose tables do not exist yet answers `empty()`: nothing has been received."""
    def wrap(method: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(method)
        def read(self: Inbox, *args, **kwargs) -> R:
            if self.read_only and not self._has_schema():
                return empty()
            return method(self, *args, **kwargs)
        return read
    return wrap


class MultiRowInsert:
    """SQLite: an INSERT of many rows as one `VALUES (…), (…)` statement with positional parameters, compiled
    once per row count: one driver call per chunk of rows, and none of the per-row parameter processing of
    SQLAlchemy's executemany (about 20 µs a row, a good part of a group commit's CPU, which the event loop
    waits for). Rows are tuples in the order of `columns`: no dict per row."""

    CHUNK_ROWS = 100

    def __init__(self, build: Callable[[list[dict]], Insert], columns: tuple[str, ...], dialect: Dialect):
        self.build, self.columns, self.dialect = build, columns, dialect
        self._sql: dict[int, tuple[str, Callable[[tuple], tuple]]] = {}

    def execute(self, cursor: DBAPICursor, rows: list[tuple]) -> list[tuple]:
        """Returns what the statement's RETURNING gives, if anything."""
        returned: list[tuple] = []
        for start in range(0, len(rows), self.CHUNK_ROWS):
            chunk = rows[start:start + self.CHUNK_ROWS]
            sql, ordered = self._compiled(len(chunk))
            cursor.execute(sql, tuple(chain.from_iterable(map(ordered, chunk))))
            if cursor.description is not None:
                returned += cursor.fetchall()
        return returned

    def _compiled(self, count: int) -> tuple[str, Callable[[tuple], tuple]]:
        """The SQL for `count` rows, and a row's values in the order of its placeholders."""
        if count not in self._sql:
            compiled = self.build([dict.fromkeys(self.columns)] * count).compile(dialect=self.dialect)
            order = [name.removesuffix("_m0") for name in compiled.positiontup[:len(self.columns)]]
            self._sql[count] = (str(compiled), operator.itemgetter(*map(self.columns.index, order)))
        return self._sql[count]


class ArrayInsert:
    """Postgres: an INSERT of many rows as `INSERT … SELECT * FROM unnest(%s::type[], …)`, one array parameter
    per column, whatever the row count: one text (prepared once by the driver), and about 15 µs less of the
    driver's CPU a row than a `VALUES` list of one parameter per value (psycopg adapts each one). Rows are
    tuples in the order of `columns`."""

    def __init__(self, table: Table, columns: tuple[str, ...], conflict: str, returning: tuple[str, ...] = ()):
        dialect = postgresql.dialect()
        name = dialect.identifier_preparer.quote
        arrays = ", ".join(f"%s::{table.c[column].type.compile(dialect=dialect)}[]" for column in columns)
        self.sql = (f"INSERT INTO {name(table.name)} ({', '.join(map(name, columns))}) SELECT * FROM unnest({arrays}) "
                    f"ON CONFLICT ({name(conflict)}) DO NOTHING")
        if returning:
            self.sql += f" RETURNING {', '.join(map(name, returning))}"

    def execute(self, cursor: DBAPICursor, rows: list[tuple]) -> list[tuple]:
        """Returns what the statement's RETURNING gives, if anything."""
        cursor.execute(self.sql, [list(column) for column in zip(*rows, strict=True)])
        return cursor.fetchall() if cursor.description is not None else []


class Inbox:
    """All reads and writes of inbox state. Safe to share between threads of one process.

    `read_only=True` is for callers that only look (`mediasift status`, `objects show`, `dlq list`): it
    creates nothing, reads of an inbox not created yet answer as empty, and writes raise InboxUnavailable.
    """

    def __init__(self, url: str, *, read_only: bool = False):
        self.url = url
        self.read_only = read_only
        self.is_sqlite = url.startswith("sqlite")
        database = make_url(url).database if self.is_sqlite else None
        self._sqlite_file = Path(database) if database and database != ":memory:" else None
        self.engine = self._engine(url)
        self._insert = sqlite.insert if self.is_sqlite else postgresql.insert
        self._write_lock = threading.Lock() if self.is_sqlite else None
        self._greatest = func.max if self.is_sqlite else func.greatest
        self._insert_events: MultiRowInsert | ArrayInsert
        self._insert_versions: MultiRowInsert | ArrayInsert
        if self.is_sqlite:
            positional = type(self.engine.dialect)(paramstyle="qmark")
            self._insert_events = MultiRowInsert(
                lambda rows: sqlite.insert(events_table).values(rows).on_conflict_do_nothing(
                    index_elements=["dedup_key"]).returning(events_table.c.dedup_key, events_table.c.seq),
                EVENT_COLUMNS, positional)
            self._insert_versions = MultiRowInsert(
                lambda rows: sqlite.insert(versions_table).values(rows).on_conflict_do_nothing(
                    index_elements=["version_hash"]), VERSION_COLUMNS, positional)
        else:
            self._insert_events = ArrayInsert(events_table, EVENT_COLUMNS, "dedup_key", ("dedup_key", "seq"))
            self._insert_versions = ArrayInsert(versions_table, VERSION_COLUMNS, "version_hash")
        self._lock_sql = ("BEGIN IMMEDIATE" if self.is_sqlite else
                          f"SET LOCAL enable_seqscan = off; SELECT pg_advisory_xact_lock({APPEND_LOCK_ID})")
        self._known_sqlite: dict[tuple[int, int], str] = {}
        self._schema_seen = False
        if not read_only:
            self._create_schema()

    def _engine(self, url: str) -> Engine:
        if not self.is_sqlite:
            return create_engine(url)
        if self.read_only and self._sqlite_file is not None:
            return create_engine(url, creator=_sqlite_read_only(self._sqlite_file))
        if self._sqlite_file is not None:
            self._sqlite_file.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine

    def _has_schema(self) -> bool:
        """Whether every inbox table exists; once seen, taken as settled (tables are never dropped)."""
        if not self._schema_seen:
            if self._sqlite_file is not None and self.read_only and not self._sqlite_file.exists():
                return False
            with self._read() as conn:
                self._schema_seen = set(metadata.tables) <= set(inspect(conn).get_table_names())
        return self._schema_seen

    def _create_schema(self) -> None:
        """Create the absent tables under a lock, re-checked inside it, so a concurrent creator (another
        process opening the same fresh inbox) is waited for rather than collided with."""
        try:
            if self._has_schema():
                return
            with self.engine.begin() as conn:
                if self.is_sqlite:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                else:
                    conn.execute(select(func.pg_advisory_xact_lock(SCHEMA_LOCK_ID)))
                metadata.create_all(conn)
        except (DBAPIError, InboxUnavailable) as error:
            raise InboxUnavailable(f"cannot open the inbox at {self.engine.url!r}: {getattr(error, 'orig', error)}"
                                   ) from error
        self._schema_seen = True

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
        if self.read_only:
            raise InboxUnavailable(f"the inbox at {self.engine.url!r} was opened read-only")
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
        """Store all events in one transaction; duplicates are absorbed (see the module docstring for what
        is one). Deletes without an ETag are resolved to a version of their key."""
        return self.append_groups([list(events)])[0]

    def append_groups(self, groups: list[list[NotificationEvent]]) -> list[AppendResult]:
        """Several requests' events in one transaction (one fsync), each group counted on its own."""
        with self._write() as conn, self._driver(conn) as cursor:
            self._lock_appends(cursor)
            return self._append(conn, cursor, groups, time.time())

    @contextmanager
    def _driver(self, conn: Connection) -> Iterator[DBAPICursor]:
        """A cursor of the driver's own, in `conn`'s transaction, for the statements of an append. They run once
        per group commit on the thread the receiver's event loop waits for, and SQLAlchemy's execution layer
        (execution context, result metadata, a Row per row) took about 15% of a group commit's CPU on SQLite.
        The driver's errors become SQLAlchemy's, as if it had run the statement: a lost connection is
        invalidated with the pool it came from, and an OperationalError makes InboxUnavailable in `_write`."""
        cursor = conn.connection.cursor()
        try:
            yield cursor
        except self.engine.dialect.loaded_dbapi.Error as error:
            dialect = self.engine.dialect
            lost = dialect.is_disconnect(error, conn.connection.dbapi_connection, cursor)
            if lost:
                conn.invalidate(error)
                self.engine.dispose()
            raise DBAPIError.instance(None, None, error, dialect.loaded_dbapi.Error, connection_invalidated=lost,
                                      dialect=dialect) from error
        finally:
            if not conn.invalidated:
                cursor.close()

    def _lock_appends(self, cursor: DBAPICursor) -> None:
        """Appends run one at a time, from the moment they read what they decide on to their commit: so an
        event's duplicates are judged against everything committed before it, and on Postgres events become
        visible in `seq` order, so a reader's cursor never passes one still being written. SQLite takes its
        write lock up front (BEGIN IMMEDIATE) for the first, since another process may append to the same
        file. A separate statement on Postgres: a statement's snapshot is taken before any lock it waits for.
        It also keeps the append's lookups on their indexes (see KNOWN_SQL_POSTGRES): every one is by key, and
        a scan of a whole table is never the better plan, whatever the planner's statistics say."""
        cursor.execute(self._lock_sql)

    def _append(self, conn: Connection, cursor: DBAPICursor, groups: list[list[NotificationEvent]],
                now: float) -> list[AppendResult]:
        """Decide on every event in order against the stored state of its key and the events before it (a
        delete without an ETag resolves against versions created earlier in the same append), then insert
        the new ones: one SELECT for what is stored, one INSERT … ON CONFLICT DO NOTHING RETURNING for the
        events, one for the versions they introduce, one UPDATE for versions arriving again (each skipped when
        it has nothing to do)."""
        flat = [(group, e, object_id(e.bucket, e.key), occurrence_key(e)) for group, events in enumerate(groups)
                for e in events]
        keys, seen = self._known(cursor, {oid for _, e, oid, _ in flat if e.source is not Source.REDRIVE},
                                 {token for *_, token in flat if token})
        decisions: dict[str, _Decision] = {}
        for order, (group, e, oid, token) in enumerate(flat, start=PROVISIONAL):
            if e.source is Source.REDRIVE:
                decisions.setdefault(dedup_key(e), _Decision(group, e, oid, ""))
                continue
            if token in seen:
                continue
            view = keys[oid]
            if e.kind is EventKind.DELETED and not e.etag:
                e = view.resolve(e)
            decided = view.decide(e, order)
            if decided is None:
                continue
            generation, effect = decided
            key = token or dedup_key(e, generation)
            if token:
                seen.add(token)
            decisions[key] = _Decision(group, e, oid, effect, view.versions[e.version_hash])
        return self._store(conn, cursor, groups, decisions, now)

    def _store(self, conn: Connection, cursor: DBAPICursor, groups: list[list[NotificationEvent]],
               decisions: dict[str, _Decision], now: float) -> list[AppendResult]:
        """Insert the decided events; a row the unique key still refuses counts as a duplicate. A stored version
        arriving again is pending with fresh attempts and out of the DLQ; its lease, if a run holds one, stays
        until that run ends, so two runs still never hold one version."""
        inserted = [0] * len(groups)
        new = dict(self._insert_events.execute(cursor, [_event_row(key, d.event, now) for key, d in decisions.items()])
                   ) if decisions else {}
        introduced: dict[str, tuple[_Decision, int, State]] = {}
        again: set[str] = set()
        for key, d in decisions.items():
            if key not in new:
                continue
            inserted[d.group] += 1
            vh = d.event.version_hash
            if d.version is None:
                continue
            if d.version.stored:
                if d.effect == "pending":
                    again.add(vh)
            elif vh not in introduced:
                introduced[vh] = (d, new[key], State.DELETED if d.effect == "deleted" else State.PENDING)
            elif d.effect == "pending":
                introduced[vh] = (*introduced[vh][:2], State.PENDING)
        if introduced:
            self._insert_versions.execute(cursor, [_version_row(d.event, d.object_id, seq, state, now)
                                                 for d, seq, state in introduced.values()])
        if again:
            conn.execute(update(versions_table).where(versions_table.c.version_hash.in_(sorted(again)))
                         .values(state=State.PENDING.value, attempts=0, in_dlq=False, last_error=None,
                                 updated_at=time.time()))
        return [AppendResult(n, len(events) - n) for n, events in zip(inserted, groups, strict=True)]

    def _known(self, cursor: DBAPICursor, object_ids: set[str], tokens: set[str]
               ) -> tuple[dict[str, _KeyView], set[str]]:
        """The stored state of these keys, and which of these occurrence keys are stored already (KNOWN_SQL),
        in one statement per 500 of each."""
        views = {oid: _KeyView({}) for oid in object_ids}
        seen: set[str] = set()
        oids, toks = list(object_ids), list(tokens)
        for i in range(0, max(len(oids), len(toks)), KNOWN_CHUNK):
            some_oids, some_toks = oids[i:i + KNOWN_CHUNK], toks[i:i + KNOWN_CHUNK]
            sql, params = self._known_statement(some_oids, some_toks)
            cursor.execute(sql, params)
            for oid, vh, etag, version_id, state, first, kind, count, last in cursor.fetchall():
                if oid is None:
                    seen.add(vh)
                    continue
                view = views[oid]
                version = view.versions.get(vh)
                if version is None:
                    version = view.versions[vh] = _VersionView(vh, etag, version_id, State(state), first, stored=True)
                if kind == EventKind.CREATED.value:
                    version.last_create = last
                elif kind == EventKind.DELETED.value:
                    version.last_delete, version.deletes = last, count
                    if version_id is None:
                        view.deletes += count
                        view.last_delete = max(view.last_delete, last)
        return views, seen

    def _known_statement(self, object_ids: list[str], tokens: list[str]) -> tuple[str, tuple]:
        """The decision query and its parameters: on Postgres one text whatever the counts (KNOWN_SQL_POSTGRES, two
        array parameters), on SQLite one per pair of counts, made once (`IN (?, …)`; SQLite keeps each prepared)."""
        if not self.is_sqlite:
            return KNOWN_SQL_POSTGRES, (object_ids, tokens)
        counts = (len(object_ids), len(tokens))
        if counts not in self._known_sqlite:
            lists = ("IN (" + ", ".join("?" * n) + ")" for n in counts)
            self._known_sqlite[counts] = KNOWN_SQL.format(object_ids=next(lists), tokens=next(lists))
        return self._known_sqlite[counts], (*object_ids, *tokens)

    @_empty_until_created(list)
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

    @_empty_until_created(lambda: 0)
    def last_seq(self) -> int:
        with self._read() as conn:
            return conn.execute(LAST_SEQ).scalar_one()

    @_empty_until_created(lambda: None)
    def version(self, version_hash_: str) -> VersionRecord | None:
        with self._read() as conn:
            row = conn.execute(
                select(versions_table).where(versions_table.c.version_hash == version_hash_)
            ).first()
        return _version(row) if row else None

    @_empty_until_created(dict)
    def versions(self, version_hashes: list[str]) -> dict[str, VersionRecord]:
        """The known ones of these versions, in one query per 500 (for callers that poll many)."""
        found: dict[str, VersionRecord] = {}
        with self._read() as conn:
            for i in range(0, len(version_hashes), 500):
                chunk = version_hashes[i:i + 500]
                for row in conn.execute(select(versions_table).where(versions_table.c.version_hash.in_(chunk))):
                    found[row.version_hash] = _version(row)
        return found

    @_empty_until_created(list)
    def versions_of(self, bucket: str, key: str) -> list[VersionRecord]:
        with self._read() as conn:
            rows = conn.execute(
                select(versions_table)
                .where(versions_table.c.object_id == object_id(bucket, key))
                .order_by(versions_table.c.first_seq)
            ).all()
        return [_version(r) for r in rows]

    @_empty_until_created(list)
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

    def mark_done(self, version_hash_: str, unsupported: str | None = None) -> tuple[State, list[str]]:
        """Record a fully indexed version (or, with `unsupported` the reason, one no layer takes). The newest
        such version of a key is current: older ones become superseded, and a version that finishes after a
        newer one's is itself superseded. Newest means arrived last (by its latest create event, not its
        first): the same bytes uploaded again after a newer version was deleted are current once more.
        Returns this version's final state and the versions it superseded."""
        record = self.version(version_hash_)
        if record is None:
            raise KeyError(version_hash_)
        v, e = versions_table.c, events_table.c
        arrival = (select(func.coalesce(func.max(e.seq), v.first_seq))
                   .where(e.version_hash == v.version_hash).where(e.kind == EventKind.CREATED.value)
                   .where(e.source != Source.REDRIVE.value).correlate(versions_table).scalar_subquery())
        same_key_done = (v.object_id == record.object_id) & (v.version_hash != version_hash_) & (
            v.state.in_([State.DONE.value, State.UNSUPPORTED.value]))
        with self._write() as conn:
            mine = conn.execute(select(arrival).where(v.version_hash == version_hash_)).scalar_one()
            newer = conn.execute(
                select(func.count()).where(same_key_done).where(arrival > mine)
            ).scalar_one()
            final = State.UNSUPPORTED if unsupported else State.DONE
            state = State.SUPERSEDED if newer else final
            self._finish(conn, version_hash_, state=state.value, in_dlq=False,
                         last_error="a newer version finished first" if newer else unsupported)
            older = conn.execute(
                select(v.version_hash).where(same_key_done).where(arrival < mine)
            ).scalars().all()
            if older:
                conn.execute(update(versions_table).where(v.version_hash.in_(older))
                             .values(state=State.SUPERSEDED.value, updated_at=time.time()))
        return state, list(older)

    def mark_superseded(self, version_hash_: str, reason: str) -> None:
        """The key holds another version now: nothing is left to retry, so the version leaves the DLQ."""
        with self._write() as conn:
            self._finish(conn, version_hash_, state=State.SUPERSEDED.value, last_error=reason, in_dlq=False)

    def mark_deleted(self, version_hash_: str) -> None:
        """The version is gone from the store: it leaves the DLQ too (`dlq retry` must not send a deleted
        object back to pending)."""
        with self._write() as conn:
            self._finish(conn, version_hash_, state=State.DELETED.value, in_dlq=False)

    def mark_failed(self, version_hash_: str, error: str, *, dead_letter: bool, attempt: int = 0) -> None:
        """`attempt`: the attempt that failed, so `attempts` shows it even when a later step failed."""
        with self._write() as conn:
            self._finish(conn, version_hash_, state=State.FAILED.value, last_error=error[:4000],
                         in_dlq=dead_letter, attempts=self._greatest(versions_table.c.attempts, attempt))

    @_empty_until_created(list)
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
        with self._write() as conn, self._driver(conn) as cursor:
            self._lock_appends(cursor)
            rows = conn.execute(select(versions_table).where(v.version_hash.in_(version_hashes))
                                .where(v.in_dlq.is_(True))).all()
            self._append(conn, cursor, [[
                NotificationEvent(Source.REDRIVE, EventKind.CREATED, row.bucket, row.key, row.etag,
                                  version_id=row.version_id, size=row.size, sequencer=uuid.uuid4().hex)
                for row in rows]], now)
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

    @_empty_until_created(lambda: _counts([], 0))
    def counts(self) -> dict[str, int]:
        """Versions per state, plus `dlq` (failed versions that used all their attempts)."""
        v = versions_table.c
        with self._read() as conn:
            rows = conn.execute(select(v.state, func.count()).group_by(v.state)).all()
            dlq = conn.execute(select(func.count()).where(v.in_dlq.is_(True))).scalar_one()
        return _counts(rows, dlq)

    @_empty_until_created(lambda: 0)
    def depth(self) -> int:
        """Versions waiting for a run: the backlog the receiver guards with 429."""
        with self._read() as conn:
            return conn.execute(
                select(func.count()).where(versions_table.c.state == State.PENDING.value)
            ).scalar_one()

    @_empty_until_created(list)
    def removed_between(self, since: float, before: float, limit: int) -> list[VersionRecord]:
        """Versions gone (deleted or superseded) with their last change in [since, before), oldest first: what a
        retention pass walks, `since` its cursor. The bound is inclusive, so versions finished in one instant
        are never split across two passes (at worst one is looked at twice)."""
        v = versions_table.c
        query = (select(versions_table).where(v.state.in_([s.value for s in FINAL_STATES]))
                 .where(v.updated_at >= since).where(v.updated_at < before).order_by(v.updated_at).limit(limit))
        with self._read() as conn:
            return [_version(r) for r in conn.execute(query).all()]

    @_empty_until_created(dict)
    def event_seqs(self, version_hashes: list[str]) -> dict[str, list[int]]:
        """The sequence numbers of every stored event about each of these versions (which batches name them)."""
        seqs: dict[str, list[int]] = {h: [] for h in version_hashes}
        e = events_table.c
        with self._read() as conn:
            for i in range(0, len(version_hashes), 500):
                chunk = version_hashes[i:i + 500]
                for version_hash_, seq in conn.execute(select(e.version_hash, e.seq).where(e.version_hash.in_(chunk))):
                    seqs[version_hash_].append(seq)
        return seqs

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

    @contextmanager
    def lock_waiting(self, name: str, ttl_seconds: float, timeout_seconds: float) -> Iterator[None]:
        """`lock`, waited for (with jittered backoff) while another process holds it, up to `timeout_seconds`;
        then LockHeld."""
        owner = uuid.uuid4().hex
        with ExitStack() as held:
            for attempt in Retrying(retry=retry_if_exception_type(LockHeld), reraise=True,
                                    wait=wait_random_exponential(multiplier=0.05, max=1),
                                    stop=stop_after_delay(timeout_seconds)):
                with attempt:
                    held.enter_context(self.lock(name, owner, ttl_seconds))
            yield

    def ping(self) -> None:
        with self._read() as conn:
            conn.execute(text("SELECT 1"))


def _event_row(key: str, e: NotificationEvent, now: float) -> tuple:
    """An events row, in the order of EVENT_COLUMNS."""
    return key, e.source.value, e.kind.value, e.bucket, e.key, e.etag, e.version_id, e.version_hash, e.size, now


def _version_row(e: NotificationEvent, oid: str, seq: int, state: State, now: float) -> tuple:
    """The version an event introduces, in the order of VERSION_COLUMNS: pending, or deleted when its first word
    is a delete."""
    return e.version_hash, oid, e.bucket, e.key, e.etag, e.version_id, e.size, state.value, 0, False, seq, now, now


def _counts(rows: Iterable[tuple[str, int]], dlq: int) -> dict[str, int]:
    counts = Counter({state.value: 0 for state in State})
    counts.update(dict(rows))
    return {**counts, "dlq": dlq}


def _version(row) -> VersionRecord:
    return VersionRecord(
        version_hash=row.version_hash, object_id=row.object_id, bucket=row.bucket, key=row.key,
        etag=row.etag, version_id=row.version_id, size=row.size, state=State(row.state),
        attempts=row.attempts, last_error=row.last_error, in_dlq=bool(row.in_dlq), first_seq=row.first_seq,
        created_at=row.created_at, updated_at=row.updated_at, content_type=row.content_type,
        sha256=row.sha256,
    )

