import dagster as dg

from assets.source import source_object

ingest_job = dg.define_asset_job(
    "ingest_object_version",
    selection=[source_object],
    description="Process one object version: confirm, read, fingerprint (later: extract every layer).",
)
