"""Opening one fresh inbox from many processes at the same moment: `mediasift up` beside `mediasift status`,
or several receivers starting against one new Postgres database."""

from __future__ import annotations

import multiprocessing
import traceback
import uuid

import pytest
from sqlalchemy import create_engine, inspect, text

from mediasift.inbox import Inbox, metadata
from mediasift.intake.events import EventKind, NotificationEvent, Source

PROCESSES = 8


def _open_and_append(url: str, n: int, barrier, errors) -> None:
    """One process: wait for all the others, then open the inbox and append one event of its own."""
    try:
        barrier.wait(timeout=120)
        inbox = Inbox(url)
        inbox.append([NotificationEvent(Source.TIGRIS, EventKind.CREATED, "media", f"p{n}.jpg", f"e{n}")])
        inbox.close()
    except Exception:
        errors.put(f"process {n}: {traceback.format_exc()}")
        raise


def _open_all_at_once(url: str) -> list[str]:
    ctx = multiprocessing.get_context("spawn")
    barrier, errors = ctx.Barrier(PROCESSES), ctx.Queue()
    processes = [ctx.Process(target=_open_and_append, args=(url, n, barrier, errors)) for n in range(PROCESSES)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=180)
        if process.is_alive():
            process.kill()
    failures = [f"process {n} exited with {p.exitcode}" for n, p in enumerate(processes) if p.exitcode != 0]
    while not errors.empty():
        failures.append(errors.get())
    return failures


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_url(request, tmp_path) -> str:
    """The URL of an inbox that does not exist yet: a SQLite file not yet made, or an empty Postgres database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'inbox.db'}"
    server = request.getfixturevalue("postgres_url")
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return server.rsplit("/", 1)[0] + f"/{name}"


def test_eight_processes_open_one_fresh_inbox_at_once(fresh_url):
    failures = _open_all_at_once(fresh_url)

    assert failures == []
    engine = create_engine(fresh_url)
    try:
        schema = inspect(engine)
        assert sorted(t for t in schema.get_table_names() if not t.startswith("sqlite_")) == sorted(metadata.tables)
        for table in metadata.sorted_tables:
            assert {i.name for i in table.indexes} <= {i["name"] for i in schema.get_indexes(table.name)}
    finally:
        engine.dispose()
    inbox = Inbox(fresh_url, read_only=True)
    assert sorted(e.key for e in inbox.events_after(0, 100)) == sorted(f"p{n}.jpg" for n in range(PROCESSES))
    inbox.close()
