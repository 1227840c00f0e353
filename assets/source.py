import dagster as dg

from dagster_project.partitions import object_versions
from mediasift.run.versions import VersionResult

SOURCE = dg.AssetKey(["mediasift", "source_object"])

source_spec = dg.AssetSpec(
    SOURCE,
    description="The object version as it really is in the bucket: checked with HEAD, then read once by the "
                "extraction worker, pinned to the notified ETag (If-Match) or VersionId; sha256 and the content "
                "type sniffed from the bytes. Superseded when the key was overwritten since, deleted when gone "
                "or on a delete event.",
    group_name="source",
    kinds={"s3"},
    partitions_def=object_versions,
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
    return dg.AssetMaterialization(SOURCE, partition=result.version.version_hash, metadata=facts)
