"""The inbox sensor and the source_object asset against real SeaweedFS, in-process Dagster.

(`evaluate_tick` cannot load dynamic partitions for a partitioned job in tests, so the sensor function
is called with `build_sensor_context`, its partitions added to the instance, then `materialize()`.)
"""

import json

import dagster as dg
import pytest

from assets.source import SOURCE
from dagster_project.partitions import KIND_TAG
from mediasift.inbox import State
from mediasift.local.samples import write_text_pdf
from mediasift.store.s3 import ObjectStore
from resources import S3Resource
from tests.conftest import payload
from tests.helpers import pipeline_resources, run, tick, wait_for_events


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture
def resources(stack, bucket, tmp_path):
    return pipeline_resources(stack.settings, bucket, tmp_path)


def test_sensor_turns_new_events_into_partitions_and_one_run_each(stack, bucket, stack_inbox, webhook, instance,
                                                                  resources):
    body = json.loads(payload("seaweedfs-create.json"))
    body["key"] = f"/buckets/{bucket}/in/img_3.jpg"
    webhook("seaweedfs", body)
    webhook("seaweedfs", body)
    start = str(stack_inbox.last_seq() - 1)
    result = tick(instance, resources, start)
    mine = [r for r in result.run_requests if r.tags[KIND_TAG] == "created"]
    assert len(mine) == 1
    assert instance.get_dynamic_partitions("object_versions") == [mine[0].partition_key]
    assert tick(instance, resources, result.cursor).run_requests == []


def test_runs_materialize_lineage_supersede_overwrites_and_mark_deletions(stack, bucket, stack_inbox, instance,
                                                                           resources):
    client = ObjectStore.from_settings(stack.settings).client
    cursor = str(stack_inbox.last_seq())
    client.put_object(Bucket=bucket, Key="a.txt", Body=b"first draft")
    client.put_object(Bucket=bucket, Key="a.txt", Body=b"second version")
    client.put_object(Bucket=bucket, Key="gone.txt", Body=b"short lived")
    client.delete_object(Bucket=bucket, Key="gone.txt")
    wait_for_events(stack_inbox, bucket, 4)

    result = tick(instance, resources, cursor)
    assert len(result.run_requests) == 4
    outcomes = {}
    for request in result.run_requests:
        materializations = run(instance, resources, request).asset_materializations_for_node("object_version")
        meta = next(m for m in materializations if m.asset_key == SOURCE).metadata
        outcomes[(meta["key"].value, request.tags[KIND_TAG])] = meta

    versions = stack_inbox.versions_of(bucket, "a.txt")
    assert [v.state for v in versions] == [State.SUPERSEDED, State.UNSUPPORTED]
    assert versions[1].last_error == "unsupported: text/plain", "no layer takes plain text, and it says so"
    assert outcomes[("a.txt", "created")]["state"].value in ("unsupported", "superseded")
    done = versions[1]
    assert (done.content_type, done.size) == ("text/plain", len(b"second version"))
    assert len(done.sha256) == 64
    assert [v.state for v in stack_inbox.versions_of(bucket, "gone.txt")] == [State.DELETED]
    assert {"bucket", "key", "etag", "object_id", "sha256", "content_type", "size"} <= set(
        next(m for m in outcomes.values() if m["state"].value == "unsupported")
    )


@pytest.mark.parametrize("max_attempts", [3, 2])
def test_unreadable_object_is_retried_dead_lettered_and_redriven(stack, bucket, stack_inbox, instance, tmp_path,
                                                                 max_attempts):
    """Dagster's retries and the dead-letter decision follow the one setting, MEDIASIFT_MAX_ATTEMPTS."""
    resources = pipeline_resources(stack.settings, bucket, tmp_path, max_attempts=max_attempts)
    client = ObjectStore.from_settings(stack.settings).client
    cursor = str(stack_inbox.last_seq())
    client.put_object(Bucket=bucket, Key="locked.bin", Body=b"x")
    wait_for_events(stack_inbox, bucket, 1)
    first = tick(instance, resources, cursor)
    (request,) = first.run_requests
    s3 = resources["s3"]
    broken = {**resources, "s3": S3Resource(endpoint_url=s3.endpoint_url, region_name=s3.region_name,
                                            aws_access_key_id=s3.aws_access_key_id, aws_secret_access_key="wrong")}
    outcome = run(instance, broken, request, raise_on_error=False)
    assert not outcome.success
    (version,) = stack_inbox.versions_of(bucket, "locked.bin")
    assert (version.state, version.attempts, version.in_dlq) == (State.FAILED, max_attempts, True)
    assert "403" in version.last_error

    assert [v.version_hash for v in stack_inbox.redrive([version.version_hash])] == [version.version_hash]
    (again,) = tick(instance, resources, first.cursor).run_requests
    assert again.partition_key == request.partition_key and again.run_key != request.run_key
    assert run(instance, resources, again).success
    (version,) = stack_inbox.versions_of(bucket, "locked.bin")
    assert (version.state, version.in_dlq, version.attempts) == (State.UNSUPPORTED, False, 1)


def test_batch_mode_makes_one_run_per_batch_and_every_object_its_own_partition(stack, bucket, stack_inbox,
                                                                              instance, resources):
    client = ObjectStore.from_settings(stack.settings).client
    cursor = str(stack_inbox.last_seq())
    keys = [f"batch/{i}.txt" for i in range(5)]
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=f"note {key}".encode())
    wait_for_events(stack_inbox, bucket, 5)

    result = tick(instance, resources, cursor, batch=3)
    assert len(result.run_requests) == 2
    assert all(r.partition_key_range is not None for r in result.run_requests)
    for request in result.run_requests:
        assert run(instance, resources, request).success

    versions = [stack_inbox.versions_of(bucket, key)[0] for key in keys]
    assert [v.state for v in versions] == [State.UNSUPPORTED] * 5
    materialized = instance.get_materialized_partitions(SOURCE)
    assert {v.version_hash for v in versions} <= materialized
    assert {v.version_hash for v in versions} <= instance.get_materialized_partitions(
        dg.AssetKey(["mediasift", "transcript"]))

    client.delete_object(Bucket=bucket, Key=keys[0])
    wait_for_events(stack_inbox, bucket, 6)
    (delete,) = tick(instance, resources, result.cursor, batch=3).run_requests
    assert delete.partition_key == versions[0].version_hash
    run(instance, resources, delete)
    assert stack_inbox.versions_of(bucket, keys[0])[0].state is State.DELETED


@pytest.mark.slow
def test_a_batch_run_on_ray_actors_indexes_its_objects_and_leaves_ray_when_it_ends(stack, bucket, stack_inbox,
                                                                                   instance, tmp_path):
    import ray

    resources = pipeline_resources(stack.settings, bucket, tmp_path, ray="local")
    client = ObjectStore.from_settings(stack.settings).client
    cursor = str(stack_inbox.last_seq())
    keys = [f"ray/report {i}.pdf" for i in range(3)]
    for i, key in enumerate(keys):
        write_text_pdf(tmp_path / f"{i}.pdf", {1: f"Report {i}: the turbine was inspected."})
        client.put_object(Bucket=bucket, Key=key, Body=(tmp_path / f"{i}.pdf").read_bytes())
    wait_for_events(stack_inbox, bucket, 3)

    (request,) = tick(instance, resources, cursor, batch=3).run_requests
    result = run(instance, resources, request)
    assert result.success
    assert [stack_inbox.versions_of(bucket, key)[0].state for key in keys] == [State.DONE] * 3
    pages = [m for m in result.asset_materializations_for_node("object_version")
             if m.asset_key == dg.AssetKey(["mediasift", "pages"])]
    assert len(pages) == 3 and all(m.metadata["rows"].value > 0 for m in pages)
    assert not ray.is_initialized(), "the run left Ray at its end, not at interpreter exit"
