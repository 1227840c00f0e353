import dagster as dg

from dagster_project.partitions import object_versions
from mediasift.layers.rows import LAYERS
from mediasift.models.clip import embed_dim
from mediasift.pipeline import VersionResult, process_batch
from mediasift.store.lance import TEXT_DIM
from resources import ComputeResource, InboxResource, IndexResource, S3StorageResource

SOURCE = dg.AssetKey(["mediasift", "source_object"])
RETRY = dg.RetryPolicy(max_retries=2, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
"""Three attempts in all (DESIGN §7); a version still failing on the last one goes to the dead-letter queue."""
BATCH_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=50)

DESCRIPTIONS = {
    "source_object": "The object version as it really is in the bucket: checked with HEAD, then read once by the "
                     "extraction worker, pinned to the notified ETag (If-Match) or VersionId; sha256 and the content "
                     "type sniffed from the bytes. Superseded when the key was overwritten since, deleted when gone "
                     "or on a delete event.",
    "transcript": "Speech as segments and words with t_start/t_end (faster-whisper), from audio and video.",
    "scenes": "Video shots: boundaries, a keyframe, on-screen text (OCR) and a description per shot.",
    "visual": "One open_clip embedding per image, shot keyframe and PDF page. Flagged `untrained` when "
              "no CLIP weights are configured: such vectors find duplicates, not meaning.",
    "pages": "PDF text per page; scanned pages (no text layer) are OCR'd.",
    "entities": "Named entities (spaCy) in speech, pages and on-screen text, with where they occur; faces.",
}
CHECKS = ("rows_have_lineage", "vector_dimensions", "no_rows_for_removed_versions")


def _key(layer: str) -> dg.AssetKey:
    return dg.AssetKey(["mediasift", layer])


@dg.multi_asset(
    specs=[
        dg.AssetSpec(SOURCE, description=DESCRIPTIONS["source_object"], group_name="source", kinds={"s3"},
                     partitions_def=object_versions, skippable=True),
        *[dg.AssetSpec(_key(layer), deps=[SOURCE], description=DESCRIPTIONS[layer], group_name="layers",
                       kinds={"lancedb", "parquet"}, partitions_def=object_versions, skippable=True)
          for layer in LAYERS],
    ],
    check_specs=[dg.AssetCheckSpec(check, asset=_key(layer)) for layer in LAYERS for check in CHECKS],
    partitions_def=object_versions,
    retry_policy=RETRY,
    backfill_policy=BATCH_POLICY,
    can_subset=False,
)
def object_version(context: dg.AssetExecutionContext, inbox: InboxResource, s3: S3StorageResource,
                   index: IndexResource, compute: ComputeResource):
    """Reads each object version of the run (one, or a batch) and extracts and indexes its layers."""
    stores = index.get()
    results = []
    for result in process_batch(inbox.get(), s3.get(), stores, compute.get(), list(context.partition_keys),
                                run_id=context.run.run_id, attempt=context.retry_number + 1,
                                max_attempts=inbox.max_attempts, lease_seconds=inbox.lease_seconds):
        results.append(result)
        if not result.failed:
            _log_materializations(context, result)
    for layer in LAYERS:
        yield from _checks(stores, results, layer, compute.models.clip_model)
    failed = [r for r in results if r.failed]
    if failed:
        raise dg.Failure(
            description=f"{len(failed)} of {len(results)} object versions failed",
            metadata={"failed": dg.MetadataValue.md("\n".join(
                f"- `{r.layers.version.uri}` (etag {r.layers.version.etag}): {r.layers.error}" for r in failed))},
        )


def _log_materializations(context: dg.AssetExecutionContext, result: VersionResult) -> None:
    """One materialization per asset per object version, so a batch still shows every object on its own."""
    partition = result.layers.version.version_hash
    source = result.source.metadata() if result.source else {**result.layers.version.lineage(),
                                                                "state": result.layers.state.value}
    context.log_event(dg.AssetMaterialization(SOURCE, partition=partition,
                                              metadata={**source, "uri": result.layers.version.uri}))
    for layer in LAYERS:
        context.log_event(dg.AssetMaterialization(_key(layer), partition=partition,
                                                  metadata=_metadata(result, layer)))


def _metadata(result: VersionResult, layer: str) -> dict:
    outcome = result.layers
    metadata = {
        "state": outcome.state.value,
        "rows": outcome.rows[layer],
        "indexed_rows": outcome.indexed_rows[layer],
        "extractor": outcome.extractors.get(layer, "none"),
        "seconds": round(outcome.seconds.get(layer, 0.0), 3),
        "uri": outcome.version.uri,
        "etag": outcome.version.etag,
        "modality": outcome.modality or "-",
    }
    if layer == "visual":
        metadata["untrained"] = outcome.visual_untrained
    if outcome.removed_rows:
        metadata["removed_rows"] = outcome.removed_rows
    return metadata


def _checks(stores, results: list[VersionResult], layer: str, clip_model: str):
    removed = [r.layers.version.version_hash for r in results if r.layers.state.value in ("deleted", "superseded")]
    health = stores.index.health(layer, [r.layers.version.version_hash for r in results], removed)
    expected = embed_dim(clip_model) if layer == "visual" else TEXT_DIM
    yield dg.AssetCheckResult(asset_key=_key(layer), check_name="rows_have_lineage",
                              passed=health.rows_without_lineage == 0,
                              metadata={"rows_without_lineage": health.rows_without_lineage})
    yield dg.AssetCheckResult(asset_key=_key(layer), check_name="vector_dimensions",
                              passed=health.dim in (None, expected),
                              metadata={"dim": health.dim or 0, "expected": expected})
    yield dg.AssetCheckResult(asset_key=_key(layer), check_name="no_rows_for_removed_versions",
                              passed=health.rows_of_removed_versions == 0,
                              metadata={"rows": health.rows_of_removed_versions})
