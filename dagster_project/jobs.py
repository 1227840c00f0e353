import dagster as dg

from assets.object_version import object_version

ingest_job = dg.define_asset_job(
    "ingest_object_version",
    selection=dg.AssetSelection.assets(object_version),
    executor_def=dg.in_process_executor,
    description="Object versions (one, or a batch of new ones): confirm and read each, then extract and index "
                "every layer. In-process, so the models a run loads serve all its objects.",
)
