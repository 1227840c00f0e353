"""A changed model makes exactly its layers stale in Dagster (what the UI shows), for an object version
materialized by the real run path on real SeaweedFS: the run records each layer's code version and the
source's data version (its ETag) the way Dagster records them for an asset's outputs."""

import dagster as dg
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleCauseCategory, StaleStatus
from dagster._core.loader import LoadingContextForTest

from assets.layers import layer_key, with_extractor_versions
from dagster_project.definitions import build_definitions
from mediasift.extraction.layers.rows import LAYERS
from mediasift.store.s3 import ObjectStore
from tests.helpers import object_version, pdf_bytes, pipeline_resources, pipeline_settings, tick, wait_for_events


def staleness(instance: dg.DagsterInstance, defs: dg.Definitions, partition: str) -> dict[str, tuple]:
    resolver = CachingStaleStatusResolver(instance, defs.resolve_asset_graph(), LoadingContextForTest(instance))
    return {layer: (resolver.get_status(layer_key(layer), partition),
                    {cause.category for cause in resolver.get_stale_causes(layer_key(layer), partition)})
            for layer in LAYERS}


def test_a_new_whisper_model_makes_the_transcript_and_entities_layers_stale_and_nothing_else(
        stack, bucket, stack_inbox, tmp_path):
    cursor = str(stack_inbox.last_seq())
    ObjectStore.from_settings(stack.settings).client.put_object(
        Bucket=bucket, Key="minutes.pdf", Body=pdf_bytes("Minutes of the meeting in Lisbon."))
    wait_for_events(stack_inbox, bucket, 1)
    settings = pipeline_settings(stack.settings, bucket, tmp_path)
    now = build_definitions(settings)
    resources = pipeline_resources(stack.settings, bucket, tmp_path)
    with dg.instance_for_test() as instance:
        (request,) = tick(instance, resources, cursor).run_requests
        asset = with_extractor_versions(object_version(), settings)
        result = dg.materialize([asset], partition_key=request.partition_key, tags=request.tags,
                                resources=resources, instance=instance)
        assert result.success

        assert staleness(instance, now, request.partition_key) == dict.fromkeys(LAYERS, (StaleStatus.FRESH, set()))
        changed = build_definitions(settings.model_copy(update={"whisper_model": "base.en"}))
        after = staleness(instance, changed, request.partition_key)
        assert {layer for layer, (status, _) in after.items() if status is StaleStatus.STALE} == {
            "transcript", "entities"}
        assert after["transcript"][1] == after["entities"][1] == {StaleCauseCategory.CODE}
