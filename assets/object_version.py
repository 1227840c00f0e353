import dagster as dg

from assets.batches import batch_checks, batch_materializations
from assets.layers import batch_check_outputs, layer_check_specs, layer_checks, layer_materializations, layer_specs
from assets.source import flags_check, flags_check_spec, source_materialization, source_spec, version_flags_check
from dagster_project.partitions import KIND_TAG, REDRIVE_TAG, object_versions
from mediasift.analysis.alerts import AlertSender
from mediasift.analysis.taxonomy import load_taxonomy
from mediasift.inbox import Inbox
from mediasift.intake.events import EventKind
from mediasift.metrics import run_metrics
from mediasift.run.batches import batch_work, pending_only
from mediasift.run.versions import Attempt, VersionResult, run_versions
from mediasift.store.expectations import RowExpectations
from mediasift.store.s3 import ObjectStore
from resources import ComputeResource, InboxResource, IndexResource, S3Resource, SettingsResource

EXTRACTION_POOL = "mediasift_extraction"
"""Every ingest step takes a slot of this pool: an instance can cap how many extract at once
(`dagster instance concurrency set mediasift_extraction N`), whatever the number of runs."""
BATCH_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=50)
"""A backfill of object-version partitions: runs of up to 50 versions, so the models load once for each."""
BATCH_PARTITION_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=1)
"""A backfill of batch partitions: each batch is a run's worth already."""


def build_object_version(retry_policy: dg.RetryPolicy, partitions: dg.DynamicPartitionsDefinition = object_versions
                         ) -> dg.AssetsDefinition:
    """The one step of every ingest run; the retry policy comes from the settings that also decide when a
    version goes to the dead-letter queue (`MEDIASIFT_MAX_ATTEMPTS`). `partitions`: a partition per object
    version, with every version reported on its own, or a partition per batch (`mediasift.run.batches`),
    reported as a whole."""
    per_version = partitions is object_versions

    @dg.multi_asset(
        specs=[source_spec(partitions), *layer_specs(partitions)],
        check_specs=[*layer_check_specs(partitions), flags_check_spec(partitions)],
        partitions_def=partitions,
        retry_policy=retry_policy,
        backfill_policy=BATCH_POLICY if per_version else BATCH_PARTITION_POLICY,
        pool=EXTRACTION_POOL,
        can_subset=False,
    )
    def object_version(context: dg.AssetExecutionContext, settings: SettingsResource, inbox: InboxResource,
                       s3: S3Resource, index: IndexResource, compute: ComputeResource):
        """Checks and reads each object version of the run (one, or a batch), then extracts its layers, holds
        their rows to what search expects (a version whose rows fail is written nowhere, and its blocking
        check fails on its partition), indexes and records them; evaluates the taxonomy's rules on it and
        sends an alert for each flag."""
        config = settings.get()
        stores = index.get()
        expected = RowExpectations.from_settings(config)
        attempt = Attempt(context.run.run_id, context.retry_number + 1, config.max_attempts, config.lease_seconds)
        rules = load_taxonomy(config.taxonomy).rules if config.taxonomy else ()
        alerts = AlertSender.from_settings(config, inbox.get().engine)
        code_versions = {key: spec.code_version for key, spec in context.assets_def.specs_by_key.items()}
        results = []
        try:
            for kind, version_hashes in _work(context, inbox.get(), per_version):
                for result in run_versions(inbox.get(), ObjectStore(s3.get_client()), stores, compute.get(),
                                           version_hashes, kind, attempt, expected, rules):
                    results.append(result)
                    if per_version and not result.failed:
                        context.log_event(source_materialization(result))
                        for materialization in layer_materializations(result, code_versions):
                            context.log_event(materialization)
                        if rules and not context.has_partition_key:
                            context.log_event(version_flags_check(result))
                    if alerts and result.flags and not result.failed:
                        alerts.send(result.version, result.flags)
        finally:
            if alerts:
                alerts.close()
            run_metrics().record(results)
        yield flags_check(results)
        if per_version:
            yield from layer_checks(stores, results, expected, context.has_partition_key)
            if not context.has_partition_key:
                yield from batch_check_outputs(context.assets_def)
        else:
            yield from batch_materializations(results)
            yield from batch_checks(stores, results, expected)
        failed = [r for r in results if r.failed]
        if failed:
            raise versions_failure(failed, len(results), "failed")

    return object_version


def _work(context: dg.AssetExecutionContext, inbox: Inbox, per_version: bool) -> list[tuple[EventKind, list[str]]]:
    """The run's versions by what it is to do with them: its partitions with the event kind the sensor gave
    it, or, for batch partitions, the versions of the batches' events (only those still pending when the
    stranded-versions sensor re-drives a batch: the others were finished by the run that failed)."""
    if per_version:
        return [(EventKind(context.run.tags.get(KIND_TAG, EventKind.CREATED)), list(context.partition_keys))]
    work = batch_work(inbox, list(context.partition_keys))
    return (pending_only(inbox, work) if REDRIVE_TAG in context.run.tags else work).by_kind()


def versions_failure(failed: list[VersionResult], total: int, outcome: str) -> dg.Failure:
    """The step's failure naming each version that did not make it and why; retried unless every one of them
    failed for good."""
    return dg.Failure(
        description=f"{len(failed)} of {total} object versions {outcome}",
        allow_retries=not all(r.permanent for r in failed),
        metadata={"failed": dg.MetadataValue.md("\n".join(
            f"- `{r.version.uri}` (etag {r.version.etag}): {r.state.value}: {r.reason}" for r in failed))},
    )
