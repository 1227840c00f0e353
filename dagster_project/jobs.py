import dagster as dg

from assets.source import source_object
from dagster_project.partitions import object_versions

ingest_job = dg.define_asset_job(
    "ingest_object_version",
    selection=[source_object],
    partitions_def=object_versions,
    description="Process one object version: confirm, read, fingerprint (later: extract every layer).",
)
