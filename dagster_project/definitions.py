"""The code location: assembles assets, jobs, sensors, schedules and resources for one environment."""

import dagster as dg

from assets.object_version import object_version
from dagster_project.jobs import ingest_job
from dagster_project.reconcile import reconcile_job
from dagster_project.schedules import build_reconcile_schedule
from dagster_project.sensors import build_inbox_sensor
from mediasift.config import Settings
from resources import build_resources

settings = Settings.load()

defs = dg.Definitions(
    assets=[object_version],
    jobs=[ingest_job, reconcile_job],
    sensors=[build_inbox_sensor(settings.sensor_interval_s, settings.run_batch_size, settings.run_batch_max_wait_s)],
    schedules=[build_reconcile_schedule(settings.reconcile_cron)],
    resources=build_resources(settings),
)
