"""The code location: assembles assets, jobs, sensors, schedules and resources for one environment, and
applies the cross-cutting policy (retries, the extraction pool) from its settings."""

import dagster as dg

from assets.analysis import build_analysis_assets
from assets.layers import with_extractor_versions
from assets.object_version import build_object_version
from assets.replay import build_replayed_version
from dagster_project.analysis import (
    build_analysis_job,
    build_analysis_schedule,
    build_analysis_sensor,
)
from dagster_project.jobs import build_ingest_job
from dagster_project.partitions import ingest_partitions
from dagster_project.reconcile import reconcile_job
from dagster_project.retention import build_retention_sensor
from dagster_project.schedules import build_reconcile_schedule
from dagster_project.sensors import build_inbox_sensor, build_stranded_sensor
from mediasift.config import Settings
from resources import build_resources


def retry_policy(max_attempts: int) -> dg.RetryPolicy:
    """`max_attempts` in all (DESIGN §7), the same number after which a version is dead-lettered."""
    return dg.RetryPolicy(max_retries=max_attempts - 1, delay=2, backoff=dg.Backoff.EXPONENTIAL,
                          jitter=dg.Jitter.PLUS_MINUS)


def build_definitions(settings: Settings) -> dg.Definitions:
    partitions = ingest_partitions(settings.partition_mode)
    object_version = with_extractor_versions(build_object_version(retry_policy(settings.max_attempts), partitions),
                                             settings)
    ingest_job = build_ingest_job(object_version)
    analysis_job = build_analysis_job()
    return dg.Definitions(
        assets=[object_version, build_replayed_version(partitions), *build_analysis_assets(taxonomy=settings.taxonomy)],
        jobs=[ingest_job, reconcile_job, analysis_job],
        sensors=[build_inbox_sensor(ingest_job, settings), build_stranded_sensor(ingest_job, settings),
                 build_retention_sensor(settings), build_analysis_sensor(analysis_job, settings)],
        schedules=[build_reconcile_schedule(settings.reconcile_cron),
                   build_analysis_schedule(analysis_job, settings.analysis_cron)],
        resources=build_resources(settings),
    )


defs = build_definitions(Settings.load())
