"""Batch mode's wait policy: a batch waits to fill only while an ingest run is in flight."""

import uuid

import dagster as dg
import pytest

from dagster_project.jobs import INGEST_JOB
from dagster_project.sensors import RANGE_END_TAG, RANGE_START_TAG, build_inbox_sensor
from mediasift.config import Settings
from mediasift.inbox import Inbox
from mediasift.intake.events import EventKind, NotificationEvent, Source
from resources import build_resources
from tests.helpers import ingest_job


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def database_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'inbox.db'}"
    Inbox(url).append([NotificationEvent(Source.SEAWEEDFS, EventKind.CREATED, "media", f"k{i}", f"e{i}")
                       for i in range(3)])
    return url


def evaluate(instance, database_url: str, max_wait: float = 600) -> dg.SensorResult:
    settings = Settings(database_url=database_url, run_batch_size=10, run_batch_max_wait_s=max_wait)
    sensor = build_inbox_sensor(ingest_job(), settings)
    with dg.build_sensor_context(instance=instance, resources={"inbox": build_resources(settings)["inbox"]}
                                 ) as context:
        return sensor(context)


def in_flight(instance, status: dg.DagsterRunStatus) -> None:
    instance.add_run(dg.DagsterRun(job_name=INGEST_JOB, run_id=str(uuid.uuid4()), status=status))


def test_with_nothing_in_flight_a_partial_batch_goes_at_once(instance, database_url):
    in_flight(instance, dg.DagsterRunStatus.SUCCESS)
    result = evaluate(instance, database_url)
    (request,) = result.run_requests
    (added,) = result.dynamic_partitions_requests
    assert len(added.partition_keys) == 3
    assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == (added.partition_keys[0],
                                                                           added.partition_keys[-1])


@pytest.mark.parametrize("status", [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED])
def test_while_a_run_is_in_flight_a_partial_batch_waits(instance, database_url, status):
    in_flight(instance, status)
    result = evaluate(instance, database_url)
    assert not result.run_requests and not result.dynamic_partitions_requests
    assert "waiting for a batch" in result.skip_reason.skip_message
    assert evaluate(instance, database_url, max_wait=0).run_requests, "the wait is bounded by max_wait"
