import time

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from dagster_project.instance import partition_limit_missing
from dagster_project.jobs import INGEST_JOB
from dagster_project.partitions import KIND_TAG, SEQ_TAG, object_versions
from mediasift.config import Settings
from mediasift.inbox import Inbox, InboxEvent
from resources import InboxResource

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
IN_FLIGHT = dg.RunsFilter(job_name=INGEST_JOB, statuses=[
    dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED])


def build_inbox_sensor(job: UnresolvedAssetJobDefinition, settings: Settings) -> dg.SensorDefinition:
    """`MEDIASIFT_RUN_BATCH_SIZE` 1: a run per event. More: new object versions are grouped into ranged
    runs of up to that many partitions (each still materialized on its own); events about versions already
    known (deletes) still get a run each. A batch waits to fill (at most `MEDIASIFT_RUN_BATCH_MAX_WAIT_S`)
    only while an ingest run is in flight: then the workers have work and a fuller batch costs nothing,
    while waiting with nothing in flight would only leave them idle (the daemon ticks sensors at most
    every 5 s)."""
    checked_instance = False

    @dg.sensor(
        name="inbox_sensor",
        job=job,
        minimum_interval_seconds=settings.sensor_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Turns new inbox events into object-version partitions and runs.",
    )
    def inbox_sensor(context: dg.SensorEvaluationContext, inbox: InboxResource) -> dg.SensorResult:
        nonlocal checked_instance
        if not checked_instance and (problem := partition_limit_missing(context.instance)):
            context.log.warning(f"mediasift: {problem}")
        checked_instance = True
        cursor = int(context.cursor or 0)
        box = inbox.get()
        events = box.events_after(cursor, settings.sensor_batch_size)
        if not events:
            return dg.SensorResult(skip_reason=f"no inbox events after seq {cursor}")
        if settings.run_batch_size <= 1:
            return _per_event(events)
        return _batched(context, box, cursor, events, settings.run_batch_size, settings.run_batch_max_wait_s)

    return inbox_sensor


def _per_event(events: list[InboxEvent]) -> dg.SensorResult:
    return dg.SensorResult(
        dynamic_partitions_requests=[object_versions.build_add_request(list(dict.fromkeys(e.version_hash
                                                                                           for e in events)))],
        run_requests=[_single(e) for e in events],
        cursor=str(events[-1].seq),
    )


def _single(event: InboxEvent) -> dg.RunRequest:
    return dg.RunRequest(partition_key=event.version_hash, run_key=f"{event.kind.value}:{event.version_hash}:"
                         f"{event.seq}", tags={KIND_TAG: event.kind.value, SEQ_TAG: str(event.seq)})


def _batched(context: dg.SensorEvaluationContext, inbox: Inbox, cursor: int, events: list[InboxEvent], size: int,
             max_wait: float) -> dg.SensorResult:
    """New partitions are appended in order, so each chunk of them is a contiguous partition range. A
    version is known (its partition exists) when its first event is at or before the cursor: an earlier
    tick added it. One inbox query, where asking the instance took a query per event."""
    first_seq = {h: record.first_seq for h, record in inbox.versions(list({e.version_hash for e in events})).items()}
    known = {e.version_hash for e in events if first_seq[e.version_hash] <= cursor}
    new = list(dict.fromkeys(e.version_hash for e in events if e.version_hash not in known))
    oldest = min(e.received_at for e in events)
    if (0 < len(new) < size and time.time() - oldest < max_wait and not known
            and context.instance.get_runs_count(IN_FLIGHT)):
        return dg.SensorResult(skip_reason=f"waiting for a batch while runs are in flight: {len(new)} of {size} "
                                           "new versions")
    chunks = [new[i:i + size] for i in range(0, len(new), size)]
    last = events[-1].seq
    ranged = [
        dg.RunRequest(run_key=f"batch:{chunk[0]}:{chunk[-1]}:{last}",
                      tags={RANGE_START_TAG: chunk[0], RANGE_END_TAG: chunk[-1], SEQ_TAG: str(last)})
        for chunk in chunks
    ]
    return dg.SensorResult(
        dynamic_partitions_requests=[object_versions.build_add_request(new)] if new else [],
        run_requests=ranged + [_single(e) for e in events if e.version_hash in known],
        cursor=str(last),
    )
