import warnings

import dagster as dg
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from mediasift.run.versions import VersionResult

SOURCE = dg.AssetKey(["mediasift", "source_object"])
FLAGS_CHECK = "no_rule_flags"


def source_spec(partitions: dg.PartitionsDefinition) -> dg.AssetSpec:
    return dg.AssetSpec(
        SOURCE,
        description="The object version as it really is in the bucket: checked with HEAD, then read once by the "
                    "extraction worker, pinned to the notified ETag (If-Match) or VersionId; sha256 and the "
                    "content type sniffed from the bytes. Superseded when the key was overwritten since, deleted "
                    "when gone or on a delete event.",
        group_name="source",
        kinds={"s3"},
        partitions_def=partitions,
        skippable=True,
    )


def source_materialization(result: VersionResult) -> dg.AssetMaterialization:
    """Lineage, the version's state, the content facts of the bytes the worker read, and the verdicts the
    object got at arrival (duplicate_of with its reason, anomaly score)."""
    facts: dict[str, object] = {**result.version.lineage(), "uri": result.version.uri, "state": result.state.value}
    if result.fetched is not None:
        facts.update(size=result.fetched.size, content_type=result.fetched.content_type,
                     sha256=result.fetched.sha256)
    if result.reason:
        facts["reason"] = result.reason
    facts.update({name: value for name, value in result.verdicts.items() if value is not None})
    return dg.AssetMaterialization(SOURCE, partition=result.version.version_hash, metadata=facts,
                                   tags={DATA_VERSION_TAG: result.version.etag})


def flags_check_spec(partitions: dg.PartitionsDefinition) -> dg.AssetCheckSpec:
    """Partitioned like the asset, so the UI shows the warning on the flagged version's own partition
    (a preview feature of Dagster 1.13, chosen knowingly: its warning is not repeated at every import)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(
            FLAGS_CHECK, asset=SOURCE, partitions_def=partitions,
            description="Warns on an object version that trips one of the taxonomy's rules (MEDIASIFT_TAXONOMY), "
                        "evaluated in its own run; the metadata says which rule and what tripped it.")


def flags_check(results: list[VersionResult]) -> dg.AssetCheckResult:
    """The run's verdict; Dagster puts it on the run's partition when the run has one version (the default)."""
    flagged = [r for r in results if r.flags]
    return dg.AssetCheckResult(asset_key=SOURCE, check_name=FLAGS_CHECK, passed=not flagged,
                               severity=dg.AssetCheckSeverity.WARN, metadata=_flags_metadata(flagged))


def version_flags_check(result: VersionResult) -> dg.AssetCheckEvaluation:
    """One version's verdict on its own partition, for runs over a batch of versions that have rules to
    judge them by (without a taxonomy, the run's own verdict says all there is: an event per version would
    say nothing more, at the cost of an event-log write per object)."""
    return dg.AssetCheckEvaluation(asset_key=SOURCE, check_name=FLAGS_CHECK, passed=not result.flags,
                                   severity=dg.AssetCheckSeverity.WARN, partition=result.version.version_hash,
                                   metadata=_flags_metadata([result] if result.flags else []))


def _flags_metadata(flagged: list[VersionResult]) -> dict:
    lines = [f"- `{r.version.uri}` (etag {r.version.etag}): `{f['rule']}`: {f['reason']}"
             for r in flagged for f in r.flags]
    return {"flagged_versions": len(flagged), "flags": dg.MetadataValue.md("\n".join(lines) or "none")}
