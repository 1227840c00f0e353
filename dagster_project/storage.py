import os
import sys
from collections import OrderedDict
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager

from dagster._core.execution.compute_logs import redirect_to_file
from dagster._core.storage.compute_log_manager import CapturedLogContext, ComputeIOType
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.local_compute_log_manager import IO_TYPE_EXTENSION, LocalComputeLogManager
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS, create_db_conn_string
from dagster._serdes import ConfigurableClassData
from dagster._utils import ensure_file, touch_file
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

_INITIALIZED_SHARDS: set[tuple[str, str]] = set()
"""(base_dir, shard) databases this process has created or checked against Dagster's migrations: Dagster
keeps that per storage object, and the code server makes a new one, so a new instance, for every sensor
tick (see `_schema_checked_once`)."""


class KeptOpenSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log, with each database kept open for the life of the process.

    The stock storage creates an engine, opens the database file and closes it again for every event it
    stores, and closing the last connection to a WAL database checkpoints it. A batch run stores several
    events per object version (its source partition and five layers), so that was about half of a run
    process's CPU (bench/burst.py). The files and schema are Dagster's; between processes SQLite's own
    locking applies as before, and within one the storage's lock already serialises every connection, so
    one connection per database is enough. The least recently used of more than `MAX_OPEN` are closed (a
    webserver reads many runs).

    Commits do not wait for fsync (WAL with synchronous=NORMAL, SQLite's advice for WAL): a crashed process
    loses nothing, a power cut may lose the last event-log entries, and the database stays consistent. The
    fsyncs were most of each event's wall time here (about 4 ms; seconds per 100-object run). The inbox,
    the record of what is done, keeps full durability; a lost materialization record is re-made by a
    backfill of that partition."""

    MAX_OPEN = 16

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        self._open: OrderedDict[str, Engine] = OrderedDict()
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: dict
                          ) -> "KeptOpenSqliteEventLogStorage":
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _engine(self, shard: str) -> Engine:
        engine = self._open.pop(shard, None)
        if engine is None:
            engine = create_engine(create_db_conn_string(self._base_dir, shard), poolclass=StaticPool,
                                   connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False})
            event.listen(engine, "connect", _no_fsync_per_commit)
            if (self._base_dir, shard) not in _INITIALIZED_SHARDS:
                self._initdb(engine)
                _INITIALIZED_SHARDS.add((self._base_dir, shard))
        self._open[shard] = engine
        while len(self._open) > self.MAX_OPEN:
            self._open.popitem(last=False)[1].dispose()
        return engine

    def _close_all(self) -> None:
        with self._db_lock:
            for engine in self._open.values():
                engine.dispose()
            self._open.clear()

    def wipe(self) -> None:
        self._close_all()
        super().wipe()
        _INITIALIZED_SHARDS.difference_update({k for k in _INITIALIZED_SHARDS if k[0] == self._base_dir})

    def dispose(self) -> None:
        self._close_all()
        super().dispose()


def _no_fsync_per_commit(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


_CHECKED: set[tuple[type, str]] = set()
"""(storage class, base_dir) whose schema this process has checked against Dagster's migrations."""


def _schema_checked_once(cls, base_dir: str, database: str, inst_data: ConfigurableClassData | None, from_local):
    """Dagster's SQLite run and schedule storages compare the database's alembic revision with the head of
    Dagster's migrations every time they are made, and finding the head parses all ~90 migration scripts
    (about 80 ms of CPU). The code server makes a fresh instance, so both storages, for every sensor tick
    and run launch; Dagster cannot change its migrations while the process runs, so once is enough."""
    if (cls, base_dir) in _CHECKED:
        return cls(create_db_conn_string(base_dir, database), inst_data)
    storage = from_local(base_dir, inst_data)
    _CHECKED.add((cls, base_dir))
    return storage


_ENGINES: dict[str, Engine] = {}
"""One pooled engine per run or schedule database in this process (see `_KeptEngine`)."""


def _forget_engines_in_child() -> None:
    """A forked child (a run worker) must not use, nor close, the connections its parent holds: SQLAlchemy's
    advice for engines that cross a fork."""
    for engine in _ENGINES.values():
        engine.dispose(close=False)
    _ENGINES.clear()


os.register_at_fork(after_in_child=_forget_engines_in_child)


class _KeptEngine:
    """Dagster's SQLite run and schedule storages create a new SQLAlchemy engine for every statement they
    run (about 1 ms of CPU each, against 0.13 ms on a kept engine's pooled connection). The daemon polls
    the run queue every second and stores each sensor tick's state: making engines was 28% of its samples
    in a py-spy profile of `bench/burst.py`. The engine is kept per database and process, since the code
    server makes a new storage object for every sensor tick; a forked child makes its own."""

    _conn_string: str

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        engine = _ENGINES.get(self._conn_string)
        if engine is None:
            engine = _ENGINES.setdefault(self._conn_string, create_engine(
                self._conn_string, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False}))
        with engine.connect() as conn, conn.begin():
            yield conn


class CheckedOnceSqliteRunStorage(_KeptEngine, SqliteRunStorage):
    """Dagster's SQLite run storage; its schema checked once per process (see `_schema_checked_once`), its
    engine kept (`_KeptEngine`)."""

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: dict
                          ) -> "CheckedOnceSqliteRunStorage":
        return _schema_checked_once(cls, config_value["base_dir"], "runs", inst_data, super().from_local)


class CheckedOnceSqliteScheduleStorage(_KeptEngine, SqliteScheduleStorage):
    """Dagster's SQLite schedule storage; its schema checked once per process (see `_schema_checked_once`),
    its engine kept (`_KeptEngine`)."""

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: dict
                          ) -> "CheckedOnceSqliteScheduleStorage":
        return _schema_checked_once(cls, config_value["base_dir"], "schedules", inst_data, super().from_local)


class FileComputeLogManager(LocalComputeLogManager):
    """Dagster's local compute logs (the UI's stdout/stderr of a step), written straight to their files.

    The stock manager also mirrors each file to the process's own output, with a `tail -F` and a Python
    watcher process per stream: four processes per step, about 12% of a batch run process's CPU
    (bench/burst.py). Here a step's output (mediasift's log lines among it) goes only to its files, which
    the UI shows as before, and no longer also to the code server's log."""

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: dict
                          ) -> "FileComputeLogManager":
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def capture_logs(self, log_key: Sequence[str]) -> Generator[CapturedLogContext, None, None]:
        out, err = (self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[io_type])
                    for io_type in (ComputeIOType.STDOUT, ComputeIOType.STDERR))
        ensure_file(out)
        ensure_file(err)
        with redirect_to_file(sys.stdout, out), redirect_to_file(sys.stderr, err):
            yield CapturedLogContext(log_key)
        touch_file(self.complete_artifact_path(log_key))
