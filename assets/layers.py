import dagster as dg

from assets.source import SOURCE_RETRY, source_object
from dagster_project.partitions import object_versions
from mediasift.indexing import LayerOutcome, index_version
from mediasift.layers.rows import LAYERS
from mediasift.store.lance import TEXT_DIM
from resources import InboxResource, IndexResource, ModelsResource, S3StorageResource

DESCRIPTIONS = {
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
        dg.AssetSpec(_key(layer), deps=[source_object], description=DESCRIPTIONS[layer], group_name="layers",
                     kinds={"lancedb", "parquet"}, partitions_def=object_versions)
        for layer in LAYERS
    ],
    check_specs=[dg.AssetCheckSpec(check, asset=_key(layer)) for layer in LAYERS for check in CHECKS],
    partitions_def=object_versions,
    retry_policy=SOURCE_RETRY,
    can_subset=False,
)
def object_layers(context: dg.AssetExecutionContext, inbox: InboxResource, s3: S3StorageResource,
                  index: IndexResource, models: ModelsResource):
    """Extracts every layer of one object version and indexes its rows (or removes them when the
    version was deleted or superseded)."""
    stores = index.get()
    outcome = index_version(inbox.get(), s3.get(), stores, models.get(), context.partition_key,
                            attempt=context.retry_number + 1, max_attempts=inbox.max_attempts)
    for layer in LAYERS:
        yield dg.MaterializeResult(asset_key=_key(layer), metadata=_metadata(outcome, layer))
    clip_dim = models.get().clip.dim if outcome.rows["visual"] else None
    for layer in LAYERS:
        yield from _checks(stores, outcome, layer, clip_dim)


def _metadata(outcome: LayerOutcome, layer: str) -> dict:
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


def _checks(stores, outcome: LayerOutcome, layer: str, clip_dim: int | None):
    h = outcome.version.version_hash
    mine = f"version_hash = '{h}'"
    missing = stores.index.count(layer, f"{mine} AND (bucket IS NULL OR key IS NULL OR etag IS NULL OR "
                                        f"object_id IS NULL OR extractor IS NULL)")
    yield dg.AssetCheckResult(asset_key=_key(layer), check_name="rows_have_lineage", passed=missing == 0,
                              metadata={"rows_without_lineage": missing})
    table = stores.index.table(layer)
    dim = table.schema.field("vector").type.list_size if table is not None else None
    expected = TEXT_DIM if layer != "visual" else (clip_dim or dim)
    yield dg.AssetCheckResult(asset_key=_key(layer), check_name="vector_dimensions",
                              passed=dim is None or dim == expected,
                              metadata={"dim": dim or 0, "expected": expected or 0})
    leftover = stores.index.count(layer, mine) if outcome.state.value in ("deleted", "superseded") else 0
    yield dg.AssetCheckResult(asset_key=_key(layer), check_name="no_rows_for_removed_versions",
                              passed=leftover == 0, metadata={"rows": leftover})
