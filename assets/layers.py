import warnings
from collections.abc import Iterator, Mapping

import dagster as dg
from dagster._core.definitions.data_version import (
    CODE_VERSION_TAG,
    INPUT_DATA_VERSION_TAG_PREFIX,
    INPUT_EVENT_POINTER_TAG_PREFIX,
    NULL_EVENT_POINTER,
)

from assets.source import SOURCE
from mediasift.config import Settings
from mediasift.extraction.layers.rows import LAYERS
from mediasift.extraction.versions import layer_extractors
from mediasift.run.versions import VersionResult
from mediasift.store import RowStores
from mediasift.store.expectations import CHECKS, GATED, LINEAGE, REMOVED, VECTORS, RowExpectations, Verdict

DESCRIPTIONS = {
    "transcript": "Speech as segments and words with t_start/t_end (faster-whisper), from audio and video.",
    "scenes": "Video shots: boundaries, a keyframe, on-screen text (OCR) and a description per shot.",
    "visual": "What each image, shot keyframe and PDF page shows: a trained 1280-d feature "
              "(EfficientNet-Lite0, ImageNet) and its top-5 ImageNet tags, searchable as words; with CLIP "
              "configured also a CLIP vector, which serves text→image search.",
    "pages": "PDF text per page; scanned pages (no text layer) are OCR'd.",
    "entities": "Named entities (spaCy) in speech, pages and on-screen text, with where they occur; faces.",
}
CHECK_DESCRIPTIONS = {
    LINEAGE: "Every index row of the version names its bucket, key, ETag and version hash, and they are its own. "
             "Blocking: judged before the write too, and a version that fails is written nowhere.",
    VECTORS: "Vectors have the configured models' sizes (384 MiniLM in text layers, 1280 EfficientNet-Lite0 in "
             "visual; CLIP's only where CLIP is configured). Blocking: judged before the write too, and a version "
             "that fails is written nowhere.",
    REMOVED: "No index row is left of a version the run found superseded or deleted.",
}


def layer_key(layer: str) -> dg.AssetKey:
    return dg.AssetKey(["mediasift", layer])


def layer_specs(partitions: dg.PartitionsDefinition) -> list[dg.AssetSpec]:
    return [dg.AssetSpec(layer_key(layer), deps=[SOURCE], description=DESCRIPTIONS[layer], group_name="layers",
                         kinds={"lancedb", "parquet"}, partitions_def=partitions, skippable=True)
            for layer in LAYERS]


def layer_check_specs(partitions: dg.PartitionsDefinition) -> list[dg.AssetCheckSpec]:
    """Partitioned like the layers, so each version's (or batch's) verdict is on its own partition (Dagster
    1.13's preview feature, chosen knowingly as for `no_rule_flags`). The expectations the gate judges are
    blocking: a failed one fails the step, so nothing downstream of it runs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [dg.AssetCheckSpec(check, asset=layer_key(layer), partitions_def=partitions,
                                  blocking=check in GATED, description=CHECK_DESCRIPTIONS[check])
                for layer in LAYERS for check in CHECKS]


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


def layer_checks(stores: RowStores, results: list[VersionResult], expected: RowExpectations, one_partition: bool
                 ) -> Iterator[dg.AssetCheckResult | dg.AssetCheckEvaluation]:
    """Each version's verdicts, on its own partition. In a run of one version these are results (Dagster puts
    them on the run's partition and links the materialization they judged). In a batch every version is
    judged, but only failed verdicts are recorded, each on its version's partition: a passing evaluation per
    version would be fifteen event-log writes per object (five layers, three checks), more than all the rest
    of a batch run's Dagster work for it (bench/burst.py)."""
    for result, verdict in judge_layers(stores, results, expected):
        if one_partition or not verdict.passed:
            yield _check_event(verdict, result, one_partition)


def judge_layers(stores: RowStores, results: list[VersionResult], expected: RowExpectations
                 ) -> Iterator[tuple[VersionResult, Verdict]]:
    """Every verdict on the run's versions: what the index holds of their rows after the run's write, or,
    where the gate stopped one, why none of its rows was written. A version that failed otherwise is not
    judged (the UI shows the check as not executed there: the run failed)."""
    judged = [r for r in results if not r.failed or r.stopped]
    if not judged:
        return
    versions = [r.version for r in judged]
    removed = {r.version.version_hash for r in judged if r.removed}
    for layer in LAYERS:
        held = stores.index.health(layer, [v.version_hash for v in versions])
        verdicts = expected.judge_index(layer, held, versions, removed)
        for result in judged:
            stopped = {v.check: v for v in result.stopped if v.layer == layer}
            for verdict in verdicts[result.version.version_hash]:
                yield result, stopped.get(verdict.check, verdict)


def batch_check_outputs(assets_def: dg.AssetsDefinition) -> Iterator[dg.Output]:
    """A batch's evaluations go to its versions' partitions, but the step still owes Dagster the (empty)
    output a check result would carry, one per selected layer check: what steps downstream wait on."""
    for check_key in assets_def.check_keys:
        if check_key.name in CHECKS:
            yield dg.Output(None, output_name=assets_def.get_output_name_for_asset_check_key(check_key))


def _check_event(verdict: Verdict, result: VersionResult, one_partition: bool
                 ) -> dg.AssetCheckResult | dg.AssetCheckEvaluation:
    key, description = layer_key(verdict.layer), check_description(verdict, result)
    metadata = {**verdict.facts, "uri": result.version.uri}
    if one_partition:
        return dg.AssetCheckResult(asset_key=key, check_name=verdict.check, passed=verdict.passed, metadata=metadata,
                                   description=description)
    return dg.AssetCheckEvaluation(asset_key=key, check_name=verdict.check, passed=verdict.passed, metadata=metadata,
                                   description=description, blocking=verdict.check in GATED,
                                   partition=result.version.version_hash)


def check_description(verdict: Verdict, result: VersionResult) -> str | None:
    """What a failed check says in the UI: what is wrong, and what it stopped."""
    if verdict.passed:
        return None
    where = f"`{result.version.uri}` (etag {result.version.etag})"
    if verdict in result.stopped:
        return (f"Stopped {where} before search: {verdict.problem}. None of its rows were written (feature "
                "tables, index); it is in the dead-letter queue until re-driven.")
    if verdict.check in GATED:
        return f"{where}: {verdict.problem}. Blocking: the step failed, so nothing downstream of it ran."
    return f"{where}: {verdict.problem}."

