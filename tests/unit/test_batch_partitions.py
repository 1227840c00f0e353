"""Batch partitions (a partition is an inbox sequence range) and the retention sensor, on a real SQLite inbox and
a real Dagster test instance: what a batch holds, the sensor's batches, re-drives of a batch, and partitions of
removed versions leaving Dagster in either mode."""

import time
import uuid

import dagster as dg
import pytest

from dagster_project.jobs import INGEST_JOB
from dagster_project.partitions import REDRIVE_TAG, object_batches, object_versions
from dagster_project.retention import build_retention_sensor
from dagster_project.sensors import PARTITION_TAG, build_inbox_sensor, build_stranded_sensor
from mediasift.config import Settings
from mediasift.inbox import Inbox, State
from mediasift.intake.events import EventKind, NotificationEvent, Source
from mediasift.run.batches import batch_key, batch_range, batch_work, expired_batches
from resources import build_resources
from tests.helpers import ingest_job


def created(key: str, etag: str = "e1") -> NotificationEvent:
    return NotificationEvent(Source.SEAWEEDFS, EventKind.CREATED, "media", key, etag)


def deleted(key: str, etag: str = "e1") -> NotificationEvent:
    return NotificationEvent(Source.SEAWEEDFS, EventKind.DELETED, "media", key, etag)


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def inbox_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'inbox.db'}"


def settings_for(inbox_url: str, mode: str, **overrides) -> Settings:
    return Settings(**{"database_url": inbox_url, "partition_mode": mode, "run_batch_size": 3,
                       "run_batch_max_wait_s": 0, **overrides})


def test_batch_keys_name_their_range_and_refuse_anything_else():
    assert batch_key(7, 1200) == "seq-000000000007-000000001200"
    assert batch_range(batch_key(7, 1200)) == (7, 1200)
    for bad in ("3f2a9c0d1e4b5a6c", "seq-000000000009-000000000002", "seq-1-2", "seq-000000000001-000000000002/.."):
        with pytest.raises(ValueError, match="not a batch partition key"):
            batch_range(bad)


def test_a_batch_does_each_version_as_its_last_event_there_says(inbox_url):
    inbox = Inbox(inbox_url)
    inbox.append([created("kept")])
    inbox.append([created("gone")])
    inbox.append([deleted("gone")])
    inbox.append([created("other")])
    events = inbox.events_after(0, 10)
    kept, gone, other = events[0].version_hash, events[1].version_hash, events[3].version_hash

    work = batch_work(inbox, [batch_key(events[0].seq, events[2].seq)])
    assert (work.created, work.deleted) == ([kept], [gone]), "created then deleted in one batch: deleted"
    assert other not in work.versions, "an event past the range is another batch's"
    assert batch_work(inbox, [batch_key(events[3].seq, events[3].seq)]).created == [other]


def tick_inbox_sensor(instance, settings: Settings, cursor: str | None = None) -> dg.SensorResult:
    sensor = build_inbox_sensor(ingest_job(), settings)
    with dg.build_sensor_context(instance=instance, cursor=cursor,
                                 resources={"inbox": build_resources(settings)["inbox"]}) as context:
        result = sensor(context)
    for request in result.dynamic_partitions_requests or []:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def test_in_batch_mode_each_batch_of_events_is_one_new_partition_and_one_run(instance, inbox_url):
    settings = settings_for(inbox_url, "batch")
    inbox = Inbox(inbox_url)
    inbox.append([created(f"k{i}") for i in range(4)])
    inbox.append([deleted("k0")])
    seqs = [e.seq for e in inbox.events_after(0, 10)]

    result = tick_inbox_sensor(instance, settings)
    expected = [batch_key(seqs[0], seqs[2]), batch_key(seqs[3], seqs[4])]
    assert [r.partition_key for r in result.run_requests] == expected
    assert instance.get_dynamic_partitions(object_batches.name) == expected
    assert instance.get_dynamic_partitions(object_versions.name) == [], "no partition per version"
    assert len({r.run_key for r in result.run_requests}) == 2
    assert result.cursor == str(seqs[-1])
    assert tick_inbox_sensor(instance, settings, result.cursor).run_requests == []


def test_a_run_batch_larger_than_the_sensor_batch_still_fills(instance, inbox_url):
    settings = settings_for(inbox_url, "batch", run_batch_size=5, sensor_batch_size=2)
    inbox = Inbox(inbox_url)
    inbox.append([created(f"k{i}") for i in range(7)])
    seqs = [e.seq for e in inbox.events_after(0, 10)]
    result = tick_inbox_sensor(instance, settings)
    assert [r.partition_key for r in result.run_requests] == [batch_key(seqs[0], seqs[4])]
    assert result.cursor == str(seqs[4])


def test_a_failed_batch_run_is_run_again_for_the_versions_it_never_reached(instance, inbox_url):
    settings = settings_for(inbox_url, "batch")
    inbox = Inbox(inbox_url)
    inbox.append([created(f"k{i}") for i in range(3)])
    events = inbox.events_after(0, 10)
    key = batch_key(events[0].seq, events[-1].seq)
    instance.add_dynamic_partitions(object_batches.name, [key])
    assert inbox.claim(events[0].version_hash, "the-failed-run", 60)
    inbox.mark_done(events[0].version_hash)
    run = instance.add_run(dg.DagsterRun(job_name=INGEST_JOB, run_id=str(uuid.uuid4()),
                                         status=dg.DagsterRunStatus.STARTING, tags={PARTITION_TAG: key}))
    instance.report_run_failed(run, "Run timed out due to taking longer than 180 seconds to start.")
    (record,) = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records

    sensor = build_stranded_sensor(ingest_job(), settings)
    with dg.build_run_status_sensor_context(
            sensor_name=sensor.name, dagster_event=record.event_log_entry.dagster_event, dagster_instance=instance,
            dagster_run=instance.get_run_by_id(run.run_id),
            resources={"inbox": build_resources(settings)["inbox"]}) as context:
        request = sensor(context.for_run_failure())
    assert request.partition_key == key and request.tags[REDRIVE_TAG] == "1"


def retention_tick(instance, settings: Settings, cursor: str | None = None) -> dg.SensorResult:
    sensor = build_retention_sensor(settings)
    with dg.build_sensor_context(instance=instance, cursor=cursor,
                                 resources={"inbox": build_resources(settings)["inbox"]}) as context:
        result = sensor(context)
    for request in result.dynamic_partitions_requests or []:
        for key in request.partition_keys:
            instance.delete_dynamic_partition(request.partitions_def_name, key)
    return result


def finish(inbox: Inbox, version_hash: str) -> None:
    assert inbox.claim(version_hash, "run", 60)
    inbox.mark_done(version_hash)


def test_retention_removes_the_partitions_of_versions_removed_long_enough_ago(instance, inbox_url):
    inbox = Inbox(inbox_url)
    inbox.append([created("a", "e1"), created("b")])
    old_a, b = (e.version_hash for e in inbox.events_after(0, 10))
    finish(inbox, old_a)
    inbox.append([created("a", "e2")])
    new_a = inbox.events_after(0, 10)[-1].version_hash
    finish(inbox, new_a)
    finish(inbox, b)
    instance.add_dynamic_partitions(object_versions.name, [old_a, new_a, b])
    assert inbox.version(old_a).state is State.SUPERSEDED

    fresh = retention_tick(instance, settings_for(inbox_url, "version"))
    assert fresh.dynamic_partitions_requests == [] and not fresh.cursor, "removed only just now: kept"

    settings = settings_for(inbox_url, "version", partition_retention_s=0)
    time.sleep(0.01)
    result = retention_tick(instance, settings)
    assert instance.get_dynamic_partitions(object_versions.name) == [new_a, b]
    inbox.append([deleted("b")])
    inbox.mark_deleted(b)
    time.sleep(0.01)
    retention_tick(instance, settings, result.cursor)
    assert instance.get_dynamic_partitions(object_versions.name) == [new_a]


def test_a_version_uploaded_again_after_its_partition_was_removed_gets_it_back(instance, inbox_url):
    settings = settings_for(inbox_url, "version", run_batch_size=10, partition_retention_s=0)
    inbox = Inbox(inbox_url)
    inbox.append([created("a")])
    result = tick_inbox_sensor(instance, settings)
    (version,) = instance.get_dynamic_partitions(object_versions.name)
    finish(inbox, version)
    inbox.append([deleted("a")])
    result = tick_inbox_sensor(instance, settings, result.cursor)
    inbox.mark_deleted(version)
    time.sleep(0.01)
    retention_tick(instance, settings)
    assert instance.get_dynamic_partitions(object_versions.name) == []

    inbox.append([created("a")])
    (request,) = tick_inbox_sensor(instance, settings, result.cursor).run_requests
    assert request.partition_key == version
    assert instance.get_dynamic_partitions(object_versions.name) == [version]


def test_in_batch_mode_a_batch_goes_once_every_version_in_it_is_removed(instance, inbox_url):
    inbox = Inbox(inbox_url)
    inbox.append([created("a"), created("b")])
    inbox.append([created("c")])
    events = inbox.events_after(0, 10)
    a, b, c = (e.version_hash for e in events)
    first, second = batch_key(events[0].seq, events[1].seq), batch_key(events[2].seq, events[2].seq)
    instance.add_dynamic_partitions(object_batches.name, [first, second])
    for version in (a, b, c):
        finish(inbox, version)
    inbox.append([deleted("a")])
    inbox.mark_deleted(a)
    settings = settings_for(inbox_url, "batch", partition_retention_s=0)
    time.sleep(0.01)

    kept = retention_tick(instance, settings)
    assert instance.get_dynamic_partitions(object_batches.name) == [first, second], "b is still live"
    inbox.append([deleted("b")])
    inbox.mark_deleted(b)
    time.sleep(0.01)
    retention_tick(instance, settings, kept.cursor)
    assert instance.get_dynamic_partitions(object_batches.name) == [second]


def test_expired_batches_ignore_keys_that_are_not_ranges(inbox_url):
    inbox = Inbox(inbox_url)
    inbox.append([created("a")])
    (event,) = inbox.events_after(0, 10)
    inbox.mark_deleted(event.version_hash)
    removed = inbox.removed_between(0, time.time() + 1, 10)
    assert expired_batches(inbox, ["not-a-batch", batch_key(event.seq, event.seq)], removed, time.time() + 1) == [
        batch_key(event.seq, event.seq)]


def test_batch_mode_needs_a_batch_size():
    with pytest.raises(ValueError, match="MEDIASIFT_RUN_BATCH_SIZE above 1"):
        Settings(partition_mode="batch", run_batch_size=1)
