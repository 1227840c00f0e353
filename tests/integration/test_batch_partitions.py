"""Batch partitions against real SeaweedFS and its webhook, Dagster in-process: a batch of events is one
partition and one run that does each of its versions; materializing that partition again (what a backfill of it
from the UI runs) re-extracts exactly its versions, and nothing is indexed twice."""

import dagster as dg
import pytest

from assets.layers import layer_key
from assets.source import SOURCE
from mediasift.inbox import State
from mediasift.run.batches import batch_range
from mediasift.store import RowStores
from mediasift.store.s3 import ObjectStore
from resources import build_resources
from tests.helpers import pdf_bytes, pipeline_settings, rows_of, run, tick, wait_for_events


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


def test_a_batch_partition_does_its_versions_and_a_backfill_of_it_does_exactly_them_again(stack, bucket, stack_inbox,
                                                                                         instance, tmp_path):
    settings = pipeline_settings(stack.settings, bucket, tmp_path, partition_mode="batch", run_batch_size=3)
    resources = build_resources(settings)
    client = ObjectStore.from_settings(stack.settings).client
    cursor = str(stack_inbox.last_seq())
    for name in ("alpha", "bravo", "charlie"):
        client.put_object(Bucket=bucket, Key=f"docs/{name}.pdf", Body=pdf_bytes(f"report {name}"))
    client.put_object(Bucket=bucket, Key="docs/delta.pdf", Body=pdf_bytes("report delta"))
    client.delete_object(Bucket=bucket, Key="docs/charlie.pdf")
    wait_for_events(stack_inbox, bucket, 5)

    first, second = tick(instance, resources, cursor, batch=3).run_requests
    assert instance.get_dynamic_partitions("object_batches") == [first.partition_key, second.partition_key]
    assert batch_range(first.partition_key)[0] == int(cursor) + 1
    for request in (first, second):
        assert run(instance, resources, request).success

    versions = {name: stack_inbox.versions_of(bucket, f"docs/{name}.pdf")[0]
                for name in ("alpha", "bravo", "charlie", "delta")}
    assert {name: v.state for name, v in versions.items()} == {
        "alpha": State.DONE, "bravo": State.DONE, "charlie": State.DELETED, "delta": State.DONE}
    stores = RowStores.at(settings.derived_path, settings.lance_location)
    live = {versions[n].version_hash for n in ("alpha", "bravo", "delta")}
    assert rows_of(stores, live)["lance:pages"] == 3
    assert rows_of(stores, {versions["charlie"].version_hash})["lance:pages"] == 0

    assert instance.get_materialized_partitions(SOURCE) == {first.partition_key, second.partition_key}
    assert instance.get_materialized_partitions(layer_key("pages")) == {first.partition_key, second.partition_key}
    source = instance.get_latest_materialization_event(SOURCE).asset_materialization
    assert source.partition == second.partition_key
    assert source.metadata["versions"].value == 2, "delta, and charlie's delete"
    assert {source.metadata["state_done"].value, source.metadata["state_deleted"].value} == {1}
    check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(layer_key("pages"), "rows_have_lineage")])[
        dg.AssetCheckKey(layer_key("pages"), "rows_have_lineage")]
    assert check.status.value == "SUCCEEDED" and check.partition == second.partition_key

    attempts = {name: v.attempts for name, v in versions.items()}
    assert run(instance, resources, first).success, "the backfill of the first batch"
    again = {name: stack_inbox.versions_of(bucket, f"docs/{name}.pdf")[0] for name in versions}
    assert {name: v.attempts - attempts[name] for name, v in again.items()} == {
        "alpha": 1, "bravo": 1, "charlie": 1, "delta": 0}, "exactly the first batch's versions, each tried again"
    assert {name: v.state for name, v in again.items()} == {name: v.state for name, v in versions.items()}
    assert rows_of(stores, live)["lance:pages"] == 3, "re-extraction replaces rows, never adds"
    assert rows_of(stores, {versions["charlie"].version_hash})["lance:pages"] == 0, "found gone, not extracted"
