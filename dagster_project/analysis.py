"""When the analysis assets refresh: on a cron, and when the object table changed while no ingest run is in
flight (under continuous ingestion an eager condition would re-run them after every object and stall).
Materializing them from the UI works as for any asset."""

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from assets.analysis import GROUP
from dagster_project.sensors import IN_FLIGHT
from mediasift.analysis.views import table_signature
from mediasift.config import Settings

ANALYSIS_JOB = "analysis_job"
SENSOR_INTERVAL_S = 60
ANALYSIS_IN_FLIGHT = dg.RunsFilter(job_name=ANALYSIS_JOB, statuses=IN_FLIGHT.statuses)


def build_analysis_job() -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        ANALYSIS_JOB,
        selection=dg.AssetSelection.groups(GROUP),
        executor_def=dg.in_process_executor,
        description="Refresh every analysis view from the object table: duplicate groups, anomaly scores "
                    "(and the reference arrivals are scored against), classifications and flags, clusters.",
    )


def build_analysis_schedule(job: UnresolvedAssetJobDefinition, cron: str) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(name="analysis_schedule", job=job, cron_schedule=cron,
                                 default_status=dg.DefaultScheduleStatus.RUNNING)


def build_analysis_sensor(job: UnresolvedAssetJobDefinition, settings: Settings) -> dg.SensorDefinition:
    """The cursor is the object table's signature when the last refresh was requested; a change waits
    until no ingest run (and no analysis run) is in flight, so one refresh covers a whole burst."""

    @dg.sensor(
        name="analysis_sensor",
        job=job,
        minimum_interval_seconds=SENSOR_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Requests the analysis job when the object table changed and no ingest run is in flight.",
    )
    def analysis_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        signature = table_signature(settings.derived_path)
        if signature is None:
            return dg.SensorResult(skip_reason="the object table is empty")
        if signature == context.cursor:
            return dg.SensorResult(skip_reason="the object table is unchanged since the last refresh")
        if ingesting := context.instance.get_runs_count(IN_FLIGHT):
            return dg.SensorResult(skip_reason=f"waiting for {ingesting} ingest runs in flight")
        if context.instance.get_runs_count(ANALYSIS_IN_FLIGHT):
            return dg.SensorResult(skip_reason="an analysis run is in flight")
        return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"objects:{signature}")], cursor=signature)

    return analysis_sensor
