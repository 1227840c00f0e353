"""A snapshot's replay as a Dagster backfill (DESIGN §8): one partition per object version, so the backfill's
page shows which versions of the snapshot are in the namespace yet. What a replay does is
`mediasift.snapshots.replay`'s; `mediasift replay --backfill` submits the backfill, with the snapshot and the
namespace as its tags."""

from collections.abc import Iterator

import dagster as dg

from assets.object_version import EXTRACTION_POOL, versions_failure
from assets.source import SOURCE
from dagster_project.partitions import object_versions
from mediasift.run.versions import VersionResult
from mediasift.snapshots import SnapshotError
from mediasift.snapshots.replay import NAMESPACE_TAG, NOT_REPLAYED, REPLAYED_ASSET, SNAPSHOT_TAG, Replay, ReplayPlan
from resources import SettingsResource

REPLAYED = dg.AssetKey(REPLAYED_ASSET)
REPLAY_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=100)
"""A run loads the models once for up to 100 versions; a run's versions are one contiguous range of them."""


def build_replayed_version(ingest: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """Replays are partitioned by object version in either partition mode (a snapshot's versions are what a
    replay's progress is counted in); `ingest` is what `source_object` is partitioned by, and so how a
    replayed version maps to it: itself, or every batch (which batch held a version is the inbox's to say,
    not a mapping Dagster could compute)."""
    mapping = dg.IdentityPartitionMapping() if ingest == object_versions else dg.AllPartitionMapping()

    @dg.multi_asset(
        specs=[dg.AssetSpec(
            REPLAYED,
            description="The object version re-materialised from a snapshot into a namespace of its own (feature "
                        "tables, Lance tables and inbox under <derived>/namespaces/NAME/), read as the snapshot "
                        "held it and run through the ingest path; the live index is untouched. Launched by "
                        "`mediasift replay --snapshot S --into NS --backfill`: each materialization names its "
                        "namespace and snapshot, the version's state and its rows per layer.",
            group_name="replay",
            kinds={"parquet", "lancedb"},
            partitions_def=object_versions,
            deps=[dg.AssetDep(SOURCE, partition_mapping=mapping)],
            skippable=True,
        )],
        partitions_def=object_versions,
        backfill_policy=REPLAY_POLICY,
        pool=EXTRACTION_POOL,
        can_subset=False,
    )
    def replayed_version(context: dg.AssetExecutionContext, settings: SettingsResource
                         ) -> Iterator[dg.AssetMaterialization]:
        """Replays the run's versions of the snapshot named by the run's tags into their namespace. Yields one
        materialization per version on its own partition (and none for the run as a whole)."""
        tags = context.run.tags
        if SNAPSHOT_TAG not in tags or NAMESPACE_TAG not in tags:
            raise dg.Failure(f"a replay run needs the tags {SNAPSHOT_TAG} and {NAMESPACE_TAG}; launch it with "
                             "`mediasift replay --snapshot S --into NS --backfill`", allow_retries=False)
        runner = Replay(settings.get())
        try:
            plan = runner.plan(tags[SNAPSHOT_TAG], tags[NAMESPACE_TAG]).only(context.partition_keys)
        except SnapshotError as error:
            raise dg.Failure(str(error), allow_retries=False) from error
        if skipped := len(context.partition_keys) - len(plan.pending):
            context.log.info(f"{skipped} versions are in namespace {plan.namespace.name} already")
        results = []
        for result in runner.run(plan):
            results.append(result)
            if result.state not in NOT_REPLAYED:
                yield replay_materialization(plan, result)
        failed = [r for r in results if r.state in NOT_REPLAYED]
        if failed:
            raise versions_failure(failed, len(results), "did not replay")

    return replayed_version


def replay_materialization(plan: ReplayPlan, result: VersionResult) -> dg.AssetMaterialization:
    """On the version's own partition, tagged with the namespace and the snapshot (the run's tags say them too,
    but a materialization outlives its run's context in the asset's history)."""
    names = {NAMESPACE_TAG: plan.namespace.name, SNAPSHOT_TAG: plan.snapshot.name}
    metadata: dict[str, object] = {
        "namespace": plan.namespace.name, "snapshot": plan.snapshot.name, **result.version.lineage(),
        "uri": result.version.uri, "state": result.state.value,
        **{f"{layer}_rows": count for layer, count in result.rows.items()}}
    if result.reason:
        metadata["reason"] = result.reason
    return dg.AssetMaterialization(REPLAYED, partition=result.version.version_hash, metadata=metadata, tags=names)
