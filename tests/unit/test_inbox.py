"""The inbox contract; every test runs on SQLite and on a real throwaway PostgreSQL."""

import json
import threading

import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.exc import DBAPIError

from mediasift.errors import InboxUnavailable, LockHeld
from mediasift.identity import object_id
from mediasift.inbox import Inbox, State, occurrence_key
from mediasift.intake.events import EventKind, NotificationEvent, Source
from mediasift.intake.parsers import parse_notification
from tests.conftest import _fresh_database, payload


def created(key: str, etag: str = "e1", bucket: str = "media", source: Source = Source.TIGRIS) -> NotificationEvent:
    return NotificationEvent(source, EventKind.CREATED, bucket, key, etag, size=10)


def deleted(key: str, etag: str = "", bucket: str = "media") -> NotificationEvent:
    return NotificationEvent(Source.S3, EventKind.DELETED, bucket, key, etag)


def refuse_inserts(inbox: Inbox, table: str, message: str) -> None:
    """Make the database refuse every INSERT into `table` with `message`, as a full disk would. A trigger: the
    inbox appends through the driver's own cursor, below SQLAlchemy's execution events."""
    with inbox.engine.begin() as conn:
        if inbox.is_sqlite:
            conn.exec_driver_sql(f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
                                 f"BEGIN SELECT RAISE(ABORT, '{message}'); END")
            return
        conn.exec_driver_sql(f"CREATE FUNCTION refuse_{table}() RETURNS trigger LANGUAGE plpgsql "
                             f"AS $$ BEGIN RAISE EXCEPTION '{message}'; END $$")
        conn.exec_driver_sql(f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} FOR EACH ROW "
                             f"EXECUTE FUNCTION refuse_{table}()")


def test_a_fresh_postgres_inbox_decides_through_its_indexes(postgres_url):
    """Before autovacuum's first ANALYZE the planner knows nothing of the inbox's tables and chose to scan every
    version for each group commit (29 ms a commit at about 18,000 events, growing with the inbox). The append's
    lookups are all by key: each must go through its index, whatever the table's size or statistics."""
    inbox = Inbox(_fresh_database(postgres_url))
    try:
        inbox.append([created(f"k{i}") for i in range(50)] + [deleted("k1")])
        asked = [created("k3", "e2"), deleted("k1")]
        sql, params = inbox._known_statement([object_id(e.bucket, e.key) for e in asked],
                                             [token for e in asked if (token := occurrence_key(e))])
        with inbox.engine.begin() as conn, inbox._driver(conn) as cursor:
            inbox._lock_appends(cursor)
            cursor.execute(f"EXPLAIN {sql}", params)
            plan = "\n".join(row for row, in cursor.fetchall())
    finally:
        inbox.close()
    assert "Seq Scan" not in plan, plan
    assert "ix_versions_object_id" in plan and "ix_events_version_hash" in plan, plan


def test_duplicates_are_absorbed_whatever_the_source(inbox):
    first = inbox.append([created("a.mp4"), created("b.mp4")])
    again = inbox.append([created("a.mp4", source=Source.SEAWEEDFS), created("a.mp4", etag='"E1"')])
    assert (first.inserted, first.duplicates) == (2, 0)
    assert (again.inserted, again.duplicates) == (0, 2)
    assert [e.key for e in inbox.events_after(0, 100)] == ["a.mp4", "b.mp4"]
    assert inbox.counts()["pending"] == 2


def test_groups_are_counted_on_their_own_and_the_first_of_repeats_counts(inbox):
    results = inbox.append_groups([[created("a"), created("a")], [created("b"), created("a")], [created("b")]])
    assert [(r.inserted, r.duplicates) for r in results] == [(1, 1), (1, 1), (0, 1)]
    assert [e.key for e in inbox.events_after(0, 100)] == ["a", "b"]
    assert inbox.version(created("a").version_hash).first_seq == inbox.events_after(0, 1)[0].seq


def test_events_of_one_append_get_sequence_numbers_in_their_order(inbox):
    inbox.append([created(f"k{i:03d}") for i in range(300)])
    assert [e.key for e in inbox.events_after(0, 1000)] == [f"k{i:03d}" for i in range(300)]


def test_sequence_is_monotonic_and_batches_resume_after_the_cursor(inbox):
    inbox.append([created(f"k{i}") for i in range(7)])
    first = inbox.events_after(0, 3)
    rest = inbox.events_after(first[-1].seq, 100)
    seqs = [e.seq for e in first + rest]
    assert seqs == sorted(seqs) and len(set(seqs)) == 7
    assert inbox.last_seq() == seqs[-1]


def test_concurrent_appends_lose_nothing_and_duplicate_nothing(inbox):
    def worker(n: int) -> None:
        for i in range(25):
            inbox.append([created(f"k{i}"), created(f"w{n}-{i}")])

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = inbox.events_after(0, 10_000)
    assert len(events) == 25 + 4 * 25
    assert len({(e.key, e.etag) for e in events}) == len(events)


def test_append_is_all_or_nothing(inbox):
    refuse_inserts(inbox, "versions", "disk full")
    with pytest.raises(DBAPIError, match="disk full"):
        inbox.append([created("one"), created("two")])
    assert inbox.events_after(0, 10) == []
    assert inbox.versions_of("media", "one") == []


def test_delete_without_etag_resolves_to_the_newest_live_version(inbox):
    inbox.append([created("clip.mp4", "v1")])
    inbox.append([created("clip.mp4", "v2")])
    inbox.append([deleted("clip.mp4")])
    last = inbox.events_after(0, 10)[-1]
    assert (last.kind, last.etag) == (EventKind.DELETED, "v2")


def test_delete_without_etag_in_the_same_post_resolves_to_the_version_created_just_before(inbox):
    inbox.append([created("clip.mp4", "v1")])
    result = inbox.append([created("clip.mp4", "v2"), deleted("clip.mp4"), created("clip.mp4", "v3")])
    assert (result.inserted, result.duplicates) == (3, 0)
    assert [(e.kind, e.etag) for e in inbox.events_after(0, 10)] == [
        (EventKind.CREATED, "v1"), (EventKind.CREATED, "v2"), (EventKind.DELETED, "v2"), (EventKind.CREATED, "v3")]


def test_lease_admits_one_run_at_a_time_and_counts_attempts(inbox):
    inbox.append([created("a")])
    h = created("a").version_hash
    assert inbox.claim(h, "run-1", 60)
    assert not inbox.claim(h, "run-2", 60)
    assert inbox.claim(h, "run-1", 60)
    record = inbox.version(h)
    assert (record.state, record.attempts) == (State.RUNNING, 2)


def test_expired_lease_can_be_taken_over(inbox):
    inbox.append([created("a")])
    h = created("a").version_hash
    assert inbox.claim(h, "crashed-run", -1)
    assert inbox.claim(h, "run-2", 60)


def test_newer_done_version_supersedes_the_older(inbox):
    inbox.append([created("a", "v1"), created("a", "v2")])
    old, new = created("a", "v1").version_hash, created("a", "v2").version_hash
    assert inbox.mark_done(old) == (State.DONE, [])
    assert inbox.mark_done(new) == (State.DONE, [old])
    assert [v.state for v in inbox.versions_of("media", "a")] == [State.SUPERSEDED, State.DONE]


def test_older_version_finishing_last_does_not_become_current(inbox):
    inbox.append([created("a", "v1"), created("a", "v2")])
    old, new = created("a", "v1").version_hash, created("a", "v2").version_hash
    assert inbox.mark_done(new) == (State.DONE, [])
    assert inbox.mark_done(old) == (State.SUPERSEDED, [])
    assert [v.state for v in inbox.versions_of("media", "a")] == [State.SUPERSEDED, State.DONE]


def test_content_facts_are_recorded_while_the_version_keeps_running(inbox):
    inbox.append([created("a")])
    h = created("a").version_hash
    inbox.claim(h, "run-1", 60)
    inbox.record_content(h, content_type="application/pdf", sha256="f" * 64, size=99)
    record = inbox.version(h)
    assert (record.state, record.content_type, record.sha256, record.size) == (
        State.RUNNING, "application/pdf", "f" * 64, 99)


def test_many_versions_are_looked_up_at_once_and_unknown_ones_left_out(inbox):
    events = [created(f"k{i}") for i in range(1_203)]
    inbox.append(events)
    inbox.claim(events[7].version_hash, "run-1", 60)
    wanted = [e.version_hash for e in events] + ["0" * 16]
    found = inbox.versions(wanted)
    assert set(found) == {e.version_hash for e in events}
    assert found[events[7].version_hash].state is State.RUNNING
    assert found[events[1_202].version_hash].key == "k1202"


def test_final_failure_goes_to_the_dead_letter_queue(inbox):
    inbox.append([created("a"), created("b")])
    inbox.mark_failed(created("a").version_hash, "ValueError: corrupt", dead_letter=False)
    inbox.mark_failed(created("b").version_hash, "ValueError: corrupt", dead_letter=True)
    counts = inbox.counts()
    assert (counts["failed"], counts["dlq"], counts["pending"]) == (2, 1, 0)
    assert inbox.version(created("b").version_hash).last_error == "ValueError: corrupt"


def test_redrive_gives_a_dead_letter_a_new_event_and_fresh_attempts_each_time(inbox):
    inbox.append([created("a"), created("b")])
    a, b = created("a").version_hash, created("b").version_hash
    inbox.claim(a, "run-1", 60)
    inbox.mark_failed(a, "OSError: 503", dead_letter=True, attempt=3)
    inbox.mark_failed(b, "OSError: 503", dead_letter=False, attempt=1)
    assert [v.version_hash for v in inbox.dead_letters()] == [a]
    seq = inbox.last_seq()
    assert [v.version_hash for v in inbox.redrive([a, b])] == [a]
    assert [v.version_hash for v in inbox.redrive([a])] == []
    (event,) = inbox.events_after(seq, 10)
    assert (event.version_hash, event.source, event.kind) == (a, "redrive", EventKind.CREATED)
    record = inbox.version(a)
    assert (record.state, record.in_dlq, record.attempts, record.first_seq) == (State.PENDING, False, 0, 1)
    assert inbox.version(b).state is State.FAILED
    inbox.mark_failed(a, "OSError: 503", dead_letter=True, attempt=3)
    inbox.redrive([a])
    assert len(inbox.events_after(seq, 10)) == 2, "a second redrive was absorbed as a duplicate"


def test_purge_takes_versions_out_of_the_dead_letter_queue_but_keeps_their_failure(inbox):
    inbox.append([created("a")])
    a = created("a").version_hash
    inbox.mark_failed(a, "ValueError: corrupt", dead_letter=True)
    assert inbox.purge([a, "0" * 16]) == 1
    record = inbox.version(a)
    assert (record.state, record.in_dlq, record.last_error) == (State.FAILED, False, "ValueError: corrupt")
    assert inbox.dead_letters() == [] and inbox.counts()["dlq"] == 0


def test_deleted_and_superseded_versions_are_not_live(inbox):
    inbox.append([created("a"), created("b"), created("c")])
    inbox.mark_deleted(created("a").version_hash)
    inbox.mark_superseded(created("b").version_hash, "current etag is zz")
    assert [v.key for v in inbox.live_versions("media")] == ["c"]
    assert inbox.depth() == 1


def test_named_lock_is_exclusive_and_released(inbox):
    with inbox.lock("reconcile:media", "sweep-1", 60), pytest.raises(LockHeld), \
            inbox.lock("reconcile:media", "sweep-2", 60):
        pass
    with inbox.lock("reconcile:media", "sweep-2", 60):
        pass


def test_a_waited_for_lock_is_taken_once_its_holder_lets_go_and_gives_up_in_time(inbox):
    holder_has_it, let_go, order = threading.Event(), threading.Event(), []

    def holder() -> None:
        with inbox.lock("lance-create:pages", "holder", 60):
            holder_has_it.set()
            let_go.wait(30)
            order.append("holder done")

    thread = threading.Thread(target=holder)
    thread.start()
    holder_has_it.wait(30)
    with pytest.raises(LockHeld), inbox.lock_waiting("lance-create:pages", ttl_seconds=60, timeout_seconds=0.3):
        pass
    threading.Timer(0.2, let_go.set).start()
    with inbox.lock_waiting("lance-create:pages", ttl_seconds=60, timeout_seconds=60):
        order.append("waiter has it")
    thread.join(30)
    assert order == ["holder done", "waiter has it"]


def test_expired_lock_does_not_block_forever(inbox):
    with inbox.lock("reconcile:media", "crashed", -1), inbox.lock("reconcile:media", "next", 60):
        pass


@pytest.fixture(params=["sqlite", "postgres"])
def absent_url(request, tmp_path) -> str:
    """Where an inbox could be but is not yet: no SQLite file, or a Postgres database without tables."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'home' / 'inbox.db'}"
    return _fresh_database(request.getfixturevalue("postgres_url"))


def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_read_only_inbox_that_does_not_exist_reads_as_empty_and_creates_nothing(absent_url, tmp_path):
    reader = Inbox(absent_url, read_only=True)
    assert reader.counts() == {**{s.value: 0 for s in State}, "dlq": 0}
    assert (reader.depth(), reader.last_seq(), reader.events_after(0, 10)) == (0, 0, [])
    assert (reader.versions_of("media", "a"), reader.dead_letters(), reader.version("0" * 16)) == ([], [], None)
    reader.close()
    if absent_url.startswith("sqlite"):
        assert not (tmp_path / "home").exists()
    else:
        assert table_names(absent_url) == set()


def test_read_only_inbox_sees_what_a_writer_appends_later_and_cannot_write(absent_url):
    reader = Inbox(absent_url, read_only=True)
    assert reader.events_after(0, 10) == []
    writer = Inbox(absent_url)
    writer.append([created("a")])
    assert [e.key for e in reader.events_after(0, 10)] == ["a"]
    assert reader.counts()["pending"] == 1
    with pytest.raises(InboxUnavailable, match="read-only"):
        reader.append([created("b")])
    with pytest.raises(InboxUnavailable, match="read-only"):
        reader.mark_failed(created("a").version_hash, "no", dead_letter=True)
    assert writer.counts()["pending"] == 1
    reader.close()
    writer.close()


def test_opening_an_existing_inbox_again_keeps_its_events(inbox):
    inbox.append([created("a")])
    again = Inbox(inbox.url)
    assert [e.key for e in again.events_after(0, 10)] == ["a"]
    again.close()


def s3_delete(key: str, sequencer: str, version_id: str | None = None) -> NotificationEvent:
    """An S3 ObjectRemoved record: no eTag, a sequencer, a versionId in a versioned bucket."""
    return NotificationEvent(Source.S3, EventKind.DELETED, "media", key, "", version_id=version_id,
                             sequencer=sequencer)


def test_dead_lettered_version_whose_key_is_deleted_leaves_the_dead_letter_queue(inbox):
    inbox.append([created("clip.mp4")])
    h = created("clip.mp4").version_hash
    inbox.claim(h, "run-1", 60)
    inbox.mark_failed(h, "OSError: 503", dead_letter=True, attempt=3)
    inbox.append([deleted("clip.mp4")])
    inbox.mark_deleted(h)
    assert (inbox.dead_letters(), inbox.counts()["dlq"], inbox.redrive([h])) == ([], 0, [])
    assert inbox.version(h).state is State.DELETED


def test_redelivered_s3_delete_is_absorbed_after_the_key_was_written_again(inbox):
    inbox.append([created("clip.mp4", "e0")])
    inbox.append([s3_delete("clip.mp4", "0055AED6DCD90281E5")])
    inbox.mark_deleted(created("clip.mp4", "e0").version_hash)
    inbox.append([created("clip.mp4", "e1")])
    again = inbox.append([s3_delete("clip.mp4", "0055AED6DCD90281E5")])
    assert (again.inserted, again.duplicates) == (0, 1)
    assert [v.etag for v in inbox.live_versions("media")] == ["e1"]


def test_same_bytes_uploaded_again_after_a_delete_are_a_new_arrival(inbox):
    inbox.append([created("clip.mp4")])
    h = created("clip.mp4").version_hash
    inbox.claim(h, "run-1", 60)
    inbox.mark_done(h)
    inbox.append([deleted("clip.mp4", "e1")])
    inbox.mark_deleted(h)
    seq = inbox.last_seq()
    upload = inbox.append([created("clip.mp4")])
    sweep = inbox.append([created("clip.mp4", source=Source.RECONCILE)])
    assert (upload.inserted, sweep.inserted) == (1, 0)
    (event,) = inbox.events_after(seq, 10)
    assert (event.kind, event.version_hash) == (EventKind.CREATED, h)
    record = inbox.version(h)
    assert (record.state, record.attempts, record.first_seq) == (State.PENDING, 0, inbox.events_after(0, 1)[0].seq)


def test_upload_delete_and_upload_again_in_one_post_leave_the_version_pending(inbox):
    result = inbox.append([created("clip.mp4"), deleted("clip.mp4", "e1"), created("clip.mp4")])
    assert (result.inserted, result.duplicates) == (3, 0)
    assert inbox.version(created("clip.mp4").version_hash).state is State.PENDING


def test_bytes_of_an_older_version_uploaded_after_the_key_was_deleted_are_current_again(inbox):
    inbox.append([created("a", "v1"), created("a", "v2")])
    old, new = created("a", "v1").version_hash, created("a", "v2").version_hash
    inbox.mark_done(old)
    inbox.mark_done(new)
    inbox.append([deleted("a")])  # resolves to v2, the newest live version
    inbox.mark_deleted(new)
    inbox.append([created("a", "v2"), created("a", "v1")])  # v2 again, then v1 again on top of it
    assert inbox.mark_done(new) == (State.DONE, [])
    assert inbox.mark_done(old) == (State.DONE, [new])


def tigris_put(key: str, etag: str, at: str) -> NotificationEvent:
    return NotificationEvent(Source.TIGRIS, EventKind.CREATED, "media", key, etag, sequencer=at)


def test_create_for_an_older_etag_arriving_after_the_newer_one_never_brings_it_back(inbox):
    inbox.append([tigris_put("clip.mp4", "e1", "10:00"), tigris_put("clip.mp4", "e2", "10:01")])
    old, new = created("clip.mp4", "e1").version_hash, created("clip.mp4", "e2").version_hash
    inbox.mark_done(old)
    assert inbox.mark_done(new) == (State.DONE, [old])
    late = inbox.append([tigris_put("clip.mp4", "e1", "10:00"), created("clip.mp4", "e1", source=Source.SEAWEEDFS)])
    assert (late.inserted, late.duplicates) == (0, 2)
    inbox.append([deleted("clip.mp4", "e2")])
    inbox.mark_deleted(new)
    late = inbox.append([tigris_put("clip.mp4", "e1", "10:00")])  # even after the key is deleted
    assert (late.inserted, late.duplicates) == (0, 1)
    assert inbox.live_versions("media") == []
    assert inbox.version(old).state is State.SUPERSEDED


def test_after_a_delete_a_create_without_an_occurrence_is_left_to_the_store_check(inbox):
    """After a delete the inbox cannot tell a late create that names no occurrence (SeaweedFS, the sweep) from
    the same bytes uploaded again, so it is a new arrival; its run HEADs the key, finds it gone and tombstones it."""
    inbox.append([created("clip.mp4", "e1", source=Source.SEAWEEDFS), deleted("clip.mp4", "e1")])
    h = created("clip.mp4", "e1").version_hash
    inbox.mark_deleted(h)
    late = inbox.append([created("clip.mp4", "e1", source=Source.SEAWEEDFS)])
    assert (late.inserted, inbox.version(h).state) == (1, State.PENDING)
    inbox.claim(h, "run-1", 60)
    inbox.mark_deleted(h)  # the run: HEAD answers 404
    assert inbox.live_versions("media") == []


def test_delete_that_arrives_before_its_create_leaves_nothing_live(inbox):
    inbox.append([deleted("clip.mp4", "e1")])  # Tigris and SeaweedFS deletes carry the ETag
    inbox.append([s3_delete("other.mp4", "00A1")])  # an S3 delete names no ETag, and the inbox knows no version
    assert inbox.live_versions("media") == [] and inbox.depth() == 0
    assert [v.state for v in inbox.versions_of("media", "clip.mp4")] == [State.DELETED]
    assert [(v.etag, v.state) for v in inbox.versions_of("media", "other.mp4")] == [("", State.DELETED)]


def test_late_create_of_a_deleted_s3_version_is_absorbed(inbox):
    inbox.append([s3_delete("clip.mp4", "00B2", version_id="v1")])
    late = inbox.append([NotificationEvent(Source.S3, EventKind.CREATED, "media", "clip.mp4", "e1",
                                           version_id="v1", sequencer="00A1")])
    assert (late.inserted, late.duplicates) == (0, 1)
    assert inbox.live_versions("media") == []


def test_versioned_delete_without_etag_resolves_to_the_version_it_names(inbox):
    inbox.append([NotificationEvent(Source.S3, EventKind.CREATED, "media", "clip.mp4", etag, version_id=vid)
                  for etag, vid in (("e1", "v1"), ("e2", "v2"))])
    inbox.append([s3_delete("clip.mp4", "00C3", version_id="v1")])
    last = inbox.events_after(0, 10)[-1]
    assert (last.kind, last.etag, last.version_id) == (EventKind.DELETED, "e1", "v1")


def test_redelivered_tigris_post_is_absorbed_even_when_it_uploads_and_deletes_one_object(inbox):
    body = json.dumps({"events": [
        {"eventName": name, "eventTime": f"2026-01-01T00:00:0{i}Z", "bucket": "media",
         "object": {"key": key, "size": 1, "eTag": etag}}
        for i, (name, key, etag) in enumerate([("OBJECT_CREATED_PUT", "a.mp4", "e1"),
                                                ("OBJECT_DELETED", "a.mp4", "e1"),
                                                ("OBJECT_CREATED_PUT", "b.mp4", "e2")])]}).encode()
    first = inbox.append(parse_notification(Source.TIGRIS, body).events)
    again = inbox.append(parse_notification(Source.TIGRIS, body).events)  # Tigris retries after 10 s
    assert (first.inserted, again.inserted, again.duplicates) == (3, 0, 3)
    assert [v.key for v in inbox.live_versions("media")] == ["a.mp4", "b.mp4"]  # a.mp4 until its delete's run


def test_reference_tigris_post_delivered_twice_is_absorbed_the_second_time(inbox):
    first = inbox.append(parse_notification(Source.TIGRIS, payload("tigris-all-events.json")).events)
    again = inbox.append(parse_notification(Source.TIGRIS, payload("tigris-all-events.json")).events)
    assert (first.inserted, first.duplicates, again.inserted, again.duplicates) == (5, 0, 0, 5)
