from collections.abc import Mapping

import dagster as dg
from dagster._core.definitions.data_version import (
    CODE_VERSION_TAG,
    INPUT_DATA_VERSION_TAG_PREFIX,
    INPUT_EVENT_POINTER_TAG_PREFIX,
    NULL_EVENT_POINTER,
)

from assets.source import SOURCE
from dagster_project.partitions import object_versions
from mediasift.config import Settings
from mediasift.extraction.layers.rows import LAYERS
from mediasift.extraction.models.clip import configured_name, embed_dim
from mediasift.extraction.models.imagenet import DIM as VISUAL_DIM
from mediasift.extraction.models.text import DIM as TEXT_DIM
from mediasift.extraction.versions import layer_extractors
from mediasift.run.versions import VersionResult
from mediasift.store import RowStores

DESCRIPTIONS = {
    "transcript": "Speech as segments and words with t_start/t_end (faster-whisper), from audio and video.",
    "scenes": "Video shots: boundaries, a keyframe, on-screen text (OCR) and a description per shot.",
    "visual": "What each image, shot keyframe and PDF page shows: a trained 1280-d feature "
              "(EfficientNet-Lite0, ImageNet) and its top-5 ImageNet tags, searchable as words; with CLIP "
              "configured also a CLIP vector, which serves text→image search.",
    "pages": "PDF text per page; scanned pages (no text layer) are OCR'd.",
    "entities": "Named entities (spaCy) in speech, pages and on-screen text, with where they occur; faces.",
}
CHECKS = ("rows_have_lineage", "vector_dimensions", "no_rows_for_removed_versions")


def layer_key(layer: str) -> dg.AssetKey:
    return dg.AssetKey(["mediasift", layer])


layer_specs = [
    dg.AssetSpec(layer_key(layer), deps=[SOURCE], description=DESCRIPTIONS[layer], group_name="layers",
                 kinds={"lancedb", "parquet"}, partitions_def=object_versions, skippable=True)
    for layer in LAYERS
]
layer_check_specs = [dg.AssetCheckSpec(check, asset=layer_key(layer)) for layer in LAYERS for check in CHECKS]


def with_extractor_versions(assets_def: dg.AssetsDefinition, settings: Settings) -> dg.AssetsDefinition:
    """The layer assets with the extractors and models `settings` give them as code versions: the UI shows
    each layer's, and a changed model (CLIP settings, MEDIASIFT_WHISPER_MODEL) is a new code version of
    exactly the layers it makes."""
    versions = {layer_key(layer): version for layer, version in layer_extractors(settings).items()}
    return assets_def.map_asset_specs(
        lambda spec: spec.replace_attributes(code_version=versions[spec.key]) if spec.key in versions else spec)


def layer_materializations(result: VersionResult, code_versions: Mapping[dg.AssetKey, str | None]
                           ) -> list[dg.AssetMaterialization]:
    """One per layer for this object version, so a batch still shows every object on its own. The tags are
    the provenance Dagster records itself for an asset's outputs (these are logged by hand, one per
    version): the layer's code version and the source's data version (the ETag), so the UI marks a layer
    stale once its extractors change."""
    source_version = {f"{INPUT_DATA_VERSION_TAG_PREFIX}/{SOURCE.to_user_string()}": result.version.etag,
                      f"{INPUT_EVENT_POINTER_TAG_PREFIX}/{SOURCE.to_user_string()}": NULL_EVENT_POINTER}
    return [dg.AssetMaterialization(layer_key(layer), partition=result.version.version_hash,
                                    metadata=_metadata(result, layer), tags=_provenance(
                                        code_versions.get(layer_key(layer)), source_version))
            for layer in LAYERS]


def _provenance(code_version: str | None, source_version: dict[str, str]) -> dict[str, str]:
    return {CODE_VERSION_TAG: code_version, **source_version} if code_version else {}


def _metadata(result: VersionResult, layer: str) -> dict:
    metadata = {
        "state": result.state.value,
        "rows": result.rows[layer],
        "indexed_rows": result.indexed_rows[layer],
        "extractor": result.extractors.get(layer, "none"),
        "seconds": round(result.seconds.get(layer, 0.0), 3),
        "uri": result.version.uri,
        "etag": result.version.etag,
        "modality": result.modality or "-",
    }
    if result.removed_rows:
        metadata["removed_rows"] = result.removed_rows
    return metadata


def layer_checks(stores: RowStores, results: list[VersionResult], settings: Settings):
    """What the index holds for this run's versions: lineage on every row, the models' vector sizes (the
    CLIP column only where CLIP is configured), and nothing left of removed versions."""
    hashes = [r.version.version_hash for r in results]
    removed = [r.version.version_hash for r in results if r.removed]
    clip = configured_name(settings.clip_model, settings.clip_pretrained, settings.clip_checkpoint)
    expected_clip = embed_dim(settings.clip_model) if clip else None
    for layer in LAYERS:
        health = stores.index.health(layer, hashes, removed)
        expected = VISUAL_DIM if layer == "visual" else TEXT_DIM
        clip_ok = layer != "visual" or health.dim is None or health.clip_dim == expected_clip
        yield dg.AssetCheckResult(asset_key=layer_key(layer), check_name="rows_have_lineage",
                                  passed=health.rows_without_lineage == 0,
                                  metadata={"rows_without_lineage": health.rows_without_lineage})
        yield dg.AssetCheckResult(asset_key=layer_key(layer), check_name="vector_dimensions",
                                  passed=health.dim in (None, expected) and clip_ok,
                                  metadata={"dim": health.dim or 0, "expected": expected,
                                            "clip_dim": health.clip_dim or 0, "expected_clip": expected_clip or 0})
        yield dg.AssetCheckResult(asset_key=layer_key(layer), check_name="no_rows_for_removed_versions",
                                  passed=health.rows_of_removed_versions == 0,
                                  metadata={"rows": health.rows_of_removed_versions})
