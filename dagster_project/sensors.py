import dagster as dg

from dagster_project.jobs import ingest_job
from dagster_project.partitions import KIND_TAG, SEQ_TAG, object_versions
from resources import InboxResource


def build_inbox_sensor(interval_seconds: int) -> dg.SensorDefinition:
    @dg.sensor(
        name="inbox_sensor",
        job=ingest_job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Turns new inbox events into object-version partitions and one run per event.",
    )
    def inbox_sensor(context: dg.SensorEvaluationContext, inbox: InboxResource) -> dg.SensorResult:
        cursor = int(context.cursor or 0)
        events = inbox.get().events_after(cursor, inbox.batch_size)
        if not events:
            return dg.SensorResult(skip_reason=f"no inbox events after seq {cursor}")
        new_keys = list(dict.fromkeys(e.version_hash for e in events))
        return dg.SensorResult(
            dynamic_partitions_requests=[object_versions.build_add_request(new_keys)],
            run_requests=[
                dg.RunRequest(
                    partition_key=e.version_hash,
                    run_key=f"{e.kind.value}:{e.version_hash}:{e.seq}",
                    tags={KIND_TAG: e.kind.value, SEQ_TAG: str(e.seq)},
                )
                for e in events
            ],
            cursor=str(events[-1].seq),
        )

    return inbox_sensor
