"""The gate before search, against real SeaweedFS, in-process Dagster and a real Lance index: an extractor that
makes rows of the wrong size (the visual layer of images, patched to hand back 3-d vectors: the gate is what is
under test, not the model) gets its version stopped with nothing written, while the good version of the same
batch is indexed."""

import dagster as dg
import pytest
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus as CheckStatus
from PIL import Image

from mediasift.extraction.layers import visual
from mediasift.inbox import State
from mediasift.store import RowStores
from mediasift.store.s3 import ObjectStore
from tests.helpers import pdf_bytes, pipeline_resources, png, rows_of, run, tick, wait_for_events

VISUAL = dg.AssetKey(["mediasift", "visual"])


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


def latest_check(instance, check: str, partition: str):
    records = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(VISUAL, check)], partition_filter=PartitionKeyFilter(key=partition))
    return records[dg.AssetCheckKey(VISUAL, check)]


def test_rows_of_the_wrong_size_are_stopped_before_search_and_the_rest_of_the_batch_is_indexed(
        stack, bucket, stack_inbox, instance, tmp_path, monkeypatch):
    made = visual.visual_rows

    def three_d_for_images(images, template, model, clip=None):
        rows = made(images, template, model, clip)
        for row in rows:
            if row.modality == "image":
                row.vector = row.vector[:3]
        return rows

    monkeypatch.setattr(visual, "visual_rows", three_d_for_images)
    resources = pipeline_resources(stack.settings, bucket, tmp_path)
    client = ObjectStore.from_settings(stack.settings).client
    cursor = str(stack_inbox.last_seq())
    client.put_object(Bucket=bucket, Key="photos/sky.png", Body=png(Image.new("RGB", (96, 64), (70, 130, 200))))
    client.put_object(Bucket=bucket, Key="docs/harbour.pdf", Body=pdf_bytes("The harbour report names Lisbon."))
    wait_for_events(stack_inbox, bucket, 2)

    (request,) = tick(instance, resources, cursor, batch=2).run_requests
    outcome = run(instance, resources, request, raise_on_error=False)

    assert not outcome.success, "a version of the batch failed"
    (bad,) = stack_inbox.versions_of(bucket, "photos/sky.png")
    (good,) = stack_inbox.versions_of(bucket, "docs/harbour.pdf")
    assert (bad.state, bad.in_dlq, bad.attempts) == (State.FAILED, True, 1), "dead-lettered at once, not retried"
    assert bad.last_error == "vector_dimensions: visual rows have 3-d vectors, expected 1280"
    stores = RowStores.at(tmp_path / "derived", str(tmp_path / "lance"))
    assert set(rows_of(stores, {bad.version_hash}).values()) == {0}, rows_of(stores, {bad.version_hash})
    assert good.state is State.DONE
    indexed = rows_of(stores, {good.version_hash})
    assert indexed["lance:pages"] == indexed["parquet:pages"] == 1 and indexed["parquet:objects"] == 1, indexed
    assert indexed["lance:visual"] == 1, "the good version's own visual rows went through"

    stopped = latest_check(instance, "vector_dimensions", bad.version_hash)
    assert stopped.status is CheckStatus.FAILED
    evaluation = stopped.evaluation
    assert evaluation.blocking and evaluation.partition == bad.version_hash
    assert evaluation.description.startswith(f"Stopped `s3://{bucket}/photos/sky.png` (etag {bad.etag}) before "
                                             "search: visual rows have 3-d vectors, expected 1280.")
    assert (evaluation.metadata["dim"].value, evaluation.metadata["expected"].value) == (3, 1280)
    unrecorded = {None, CheckStatus.PLANNED}
    lineage = latest_check(instance, "rows_have_lineage", bad.version_hash)
    assert (lineage and lineage.status) in unrecorded, "only the expectation it failed: a batch records failures"
    good_dims = latest_check(instance, "vector_dimensions", good.version_hash)
    assert (good_dims and good_dims.status) in unrecorded
    assert good.version_hash in instance.get_materialized_partitions(VISUAL)
    assert bad.version_hash not in instance.get_materialized_partitions(VISUAL)
