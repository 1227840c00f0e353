import dagster as dg

from dagster_project.reconcile import reconcile_job


def build_reconcile_schedule(cron: str) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(name="reconcile_schedule", job=reconcile_job, cron_schedule=cron,
                                 default_status=dg.DefaultScheduleStatus.RUNNING)
