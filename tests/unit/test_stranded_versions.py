"""A failed ingest run's versions that it never reached are run again, exactly those, a bounded number of
times; a real Dagster instance records the failure, as run monitoring does for a run stuck STARTING."""

import uuid

import dagster as dg
import pytest

from dagster_project.jobs import INGEST_JOB
from dagster_project.partitions import SEQ_TAG, object_versions
from dagster_project.sensors import (
    PARTITION_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    REDRIVE_TAG,
    build_stranded_sensor,
)
from mediasift.config import Settings
from mediasift.inbox import Inbox, State
from mediasift.intake.events import EventKind, NotificationEvent, Source
from resources import build_resources
from tests.helpers import ingest_job


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'inbox.db'}", run_batch_size=10, max_attempts=3)


@pytest.fixture
def versions(instance, settings) -> list[str]:
    """Five versions in the inbox and as partitions; the second one finished by an earlier run."""
    inbox = Inbox(settings.inbox_url)
    inbox.append([NotificationEvent(Source.SEAWEEDFS, EventKind.CREATED, "media", f"k{i}", f"e{i}") for i in range(5)])
    hashes = [e.version_hash for e in inbox.events_after(0, 10)]
    instance.add_dynamic_partitions(object_versions.name, hashes)
    assert inbox.claim(hashes[1], "earlier-run", 60)
    inbox.mark_done(hashes[1])
    return hashes


def failed_run(instance, tags: dict[str, str]) -> tuple[dg.DagsterRun, dg.DagsterEvent]:
    run = instance.add_run(dg.DagsterRun(job_name=INGEST_JOB, run_id=str(uuid.uuid4()),
                                         status=dg.DagsterRunStatus.STARTING, tags=tags))
    instance.report_run_failed(run, "Run timed out due to taking longer than 180 seconds to start.")
    (record,) = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    return instance.get_run_by_id(run.run_id), record.event_log_entry.dagster_event


def evaluate(instance, settings: Settings, run: dg.DagsterRun, event: dg.DagsterEvent):
    sensor = build_stranded_sensor(ingest_job(), settings)
    with dg.build_run_status_sensor_context(
            sensor_name=sensor.name, dagster_event=event, dagster_instance=instance, dagster_run=run,
            resources={"inbox": build_resources(settings)["inbox"]}) as context:
        return sensor(context.for_run_failure())


def test_a_failed_batch_runs_again_exactly_the_versions_it_never_reached(instance, settings, versions):
    run, event = failed_run(instance, {RANGE_START_TAG: versions[0], RANGE_END_TAG: versions[3], SEQ_TAG: "5"})
    requests = evaluate(instance, settings, run, event)
    assert [(r.partition_key, r.tags.get(RANGE_START_TAG), r.tags.get(RANGE_END_TAG)) for r in requests] == [
        (versions[0], None, None), (None, versions[2], versions[3])], "the finished version is not in either run"
    assert {(r.tags[REDRIVE_TAG], r.tags[SEQ_TAG]) for r in requests} == {("1", "5")}
    assert len({r.run_key for r in requests}) == 2 and all(run.run_id in r.run_key for r in requests)


def test_a_single_version_run_keeps_its_event_kind(instance, settings, versions):
    run, event = failed_run(instance, {PARTITION_TAG: versions[4], "mediasift/event_kind": "deleted"})
    (request,) = evaluate(instance, settings, run, event)
    assert request.partition_key == versions[4]
    assert request.tags["mediasift/event_kind"] == "deleted"


def test_after_max_attempts_failed_runs_the_versions_are_dead_lettered_with_the_failure(instance, settings, versions):
    run, event = failed_run(instance, {RANGE_START_TAG: versions[0], RANGE_END_TAG: versions[2], REDRIVE_TAG: "2"})
    skipped = evaluate(instance, settings, run, event)
    assert isinstance(skipped, dg.SkipReason)
    records = Inbox(settings.inbox_url).versions(versions)
    assert {h for h, r in records.items() if r.in_dlq} == {versions[0], versions[2]}
    assert "3 ingest runs failed before reaching it" in records[versions[0]].last_error
    assert "longer than 180 seconds to start" in records[versions[0]].last_error
    assert records[versions[1]].state is State.DONE


def test_a_run_that_left_nothing_pending_asks_for_nothing(instance, settings, versions):
    run, event = failed_run(instance, {PARTITION_TAG: versions[1]})
    assert isinstance(evaluate(instance, settings, run, event), dg.SkipReason)
