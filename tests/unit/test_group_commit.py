import asyncio
import threading
import time

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy.exc import DBAPIError

from mediasift.errors import InboxUnavailable
from mediasift.inbox import Inbox
from mediasift.intake.events import EventKind, NotificationEvent, Source
from mediasift.intake.group_commit import GroupCommitter


def created(key: str) -> NotificationEvent:
    return NotificationEvent(Source.TIGRIS, EventKind.CREATED, "media", key, "e1")


@pytest.fixture
def inbox(tmp_path):
    box = Inbox(f"sqlite:///{tmp_path / 'inbox.db'}")
    yield box
    box.close()


def test_concurrent_requests_each_get_their_own_result(inbox):
    writer = GroupCommitter(inbox)
    futures, lock = [], threading.Lock()

    def client(n: int) -> None:
        for i in range(20):
            future = writer.submit([created(f"c{n}-{i}"), created("shared")])
            with lock:
                futures.append(future)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results = [f.result(timeout=10) for f in futures]
    writer.close()
    assert sum(r.inserted for r in results) == 81
    assert sum(r.duplicates for r in results) == 79
    assert len(inbox.events_after(0, 1000)) == 81
    assert writer.backlog == 81


def test_each_group_commit_is_observed_with_its_requests_and_duration(inbox):
    observed = []
    writer = GroupCommitter(inbox, observe=lambda requests, seconds: observed.append((requests, seconds)))
    futures = [writer.submit([created(f"o{i}")]) for i in range(30)]
    assert [f.result(timeout=10).inserted for f in futures] == [1] * 30
    writer.close()
    assert sum(requests for requests, _ in observed) == 30
    assert all(requests >= 1 and isinstance(seconds, float) for requests, seconds in observed)


def refuse_inserts(inbox: Inbox, message: str, key: str | None = None) -> None:
    """Make SQLite refuse an event's INSERT (of `key`, or any) with `message`. A trigger: the inbox appends
    through the driver's own cursor, below SQLAlchemy's execution events."""
    when = f"WHEN NEW.key = '{key}' " if key else ""
    with inbox.engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TRIGGER refuse BEFORE INSERT ON events {when}"
                             f"BEGIN SELECT RAISE(ABORT, '{message}'); END")


def test_one_failing_request_does_not_fail_its_group(inbox, caplog):
    refuse_inserts(inbox, "constraint violated", key="poison")
    writer = GroupCommitter(inbox)
    with inbox._write_lock:  # hold the writer on its first request so the next three queue up as one group
        blocker = writer.submit([created("blocker")])
        time.sleep(0.2)
        before, bad, after = (writer.submit([created(key)]) for key in ("before", "poison", "after"))
    assert blocker.result(timeout=10).inserted == 1
    assert before.result(timeout=10).inserted == 1
    assert after.result(timeout=10).inserted == 1
    with pytest.raises(DBAPIError, match="constraint violated"):
        bad.result(timeout=10)
    writer.close()
    assert sorted(e.key for e in inbox.events_after(0, 10)) == ["after", "before", "blocker"]
    assert "group_commit_failed requests=3" in caplog.text


def test_requests_from_an_event_loop_are_answered_each_with_its_own_result(inbox):
    writer = GroupCommitter(inbox)

    async def post_all() -> list:
        return await asyncio.gather(*(writer.commit([created(f"k{i}"), created("shared")]) for i in range(50)))

    results = asyncio.run(post_all())
    writer.close()
    assert sorted(r.inserted for r in results) == [1] * 49 + [2]
    assert sum(r.duplicates for r in results) == 49
    assert len(inbox.events_after(0, 1000)) == 51


def test_a_failed_commit_reaches_the_awaiting_request(inbox):
    writer = GroupCommitter(inbox)
    refuse_inserts(inbox, "database is gone")

    async def post():
        return await writer.commit([created("a")])

    with pytest.raises(DBAPIError, match="database is gone"):
        asyncio.run(post())
    writer.close()


def test_requests_after_close_are_refused_as_unavailable(inbox):
    writer = GroupCommitter(inbox)
    committed = writer.submit([created("before")])
    writer.close()
    assert committed.result(timeout=10).inserted == 1
    with pytest.raises(InboxUnavailable, match="shutting down"):
        writer.submit([created("after")])
    assert [e.key for e in inbox.events_after(0, 10)] == ["before"]



def test_senders_coming_back_for_their_next_request_share_one_commit(inbox):
    """Given 16 senders that each send their next request a little after the last is answered (a webhook
    source's connections: 0 to 1.5 ms of network and parsing) and a disk that takes 3 ms per commit, when
    they send 10 each, then each round of requests shares about one commit. Without waiting for the senders
    of the group before, the groups split in two and stay split: twice the commits (20)."""
    sa_event.listen(inbox.engine, "commit", lambda conn: time.sleep(0.003))
    commits = []
    sa_event.listen(inbox.engine, "commit", lambda conn: commits.append(1))
    writer = GroupCommitter(inbox)

    async def sender(n: int) -> list:
        results = []
        for i in range(10):
            await asyncio.sleep(0.0005 * (n % 4))
            results.append(await writer.commit([created(f"s{n}-{i}")]))
        return results

    async def all_senders() -> list:
        return await asyncio.gather(*(sender(n) for n in range(16)))

    answers = [result for results in asyncio.run(all_senders()) for result in results]
    writer.close()
    assert [r.inserted for r in answers] == [1] * 160
    assert len(inbox.events_after(0, 1000)) == 160
    assert len(commits) <= 15
