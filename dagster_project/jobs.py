import dagster as dg

from assets.layers import object_layers
from assets.source import source_object

ingest_job = dg.define_asset_job(
    "ingest_object_version",
    selection=dg.AssetSelection.assets(source_object, object_layers),
    executor_def=dg.in_process_executor,
    description="One object version: confirm and read it, then extract and index every layer. In-process, so "
                "the models a run loads serve all its steps.",
)
