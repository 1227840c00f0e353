import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

INGEST_JOB = "ingest_object_version"


def build_ingest_job(object_version: dg.AssetsDefinition) -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        INGEST_JOB,
        selection=dg.AssetSelection.assets(object_version),
        executor_def=dg.in_process_executor,
        description="Object versions (one, or a batch of new ones): confirm and read each, then extract and "
                    "index every layer. In-process, so the models a run loads serve all its objects.",
    )
