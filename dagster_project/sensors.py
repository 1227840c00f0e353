import time
from itertools import groupby

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from dagster_project.instance import partition_limit_missing
from dagster_project.jobs import INGEST_JOB
from dagster_project.partitions import KIND_TAG, REDRIVE_TAG, SEQ_TAG, object_batches, object_versions
from mediasift.config import Settings
from mediasift.inbox import Inbox, InboxEvent, State
from mediasift.run.batches import batch_work, batches_of
from resources import InboxResource

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"
STRANDED_INTERVAL_S = 30
"""Failed runs are rare and their versions have waited minutes already (run monitoring's start timeout);
each tick costs the code server an evaluation, so this sensor ticks seldom."""
IN_FLIGHT = dg.RunsFilter(job_name=INGEST_JOB, statuses=[
    dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED])


def build_inbox_sensor(job: UnresolvedAssetJobDefinition, settings: Settings) -> dg.SensorDefinition:
    """`MEDIASIFT_RUN_BATCH_SIZE` 1: a run per event. More: new object versions are grouped into ranged
    runs of up to that many partitions (each still materialized on its own); events about versions already
    known (deletes) still get a run each. With `MEDIASIFT_PARTITION_MODE=batch`, up to that many events make
    one batch partition and its run, whatever they are about. A batch waits to fill (at most
    `MEDIASIFT_RUN_BATCH_MAX_WAIT_S`) only while an ingest run is in flight: then the workers have work and a
    fuller batch costs nothing, while waiting with nothing in flight would only leave them idle (the daemon
    ticks sensors at most every 5 s). A tick reads `MEDIASIFT_SENSOR_BATCH_SIZE` events, or a whole run's
    batch when that is larger: a batch cut from fewer events could never fill."""
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
        events = box.events_after(cursor, max(settings.sensor_batch_size, settings.run_batch_size))
        if not events:
            return dg.SensorResult(skip_reason=f"no inbox events after seq {cursor}")
        if settings.partition_mode == "batch":
            return _batch_partitions(context, events, settings.run_batch_size, settings.run_batch_max_wait_s)
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
    version is known when its first event is at or before the cursor: an earlier tick added its partition
    (one inbox query, where asking the instance took a query per event). Known ones are added again after the
    new ones, which Dagster skips unless the retention sensor removed the partition since."""
    first_seq = {h: record.first_seq for h, record in inbox.versions(list({e.version_hash for e in events})).items()}
    known = {e.version_hash for e in events if first_seq[e.version_hash] <= cursor}
    new = list(dict.fromkeys(e.version_hash for e in events if e.version_hash not in known))
    if 0 < len(new) < size and not known and _worth_waiting(context, events, max_wait):
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
        dynamic_partitions_requests=[object_versions.build_add_request(new + sorted(known))],
        run_requests=ranged + [_single(e) for e in events if e.version_hash in known],
        cursor=str(last),
    )


def _batch_partitions(context: dg.SensorEvaluationContext, events: list[InboxEvent], size: int, max_wait: float
                      ) -> dg.SensorResult:
    """Each batch of up to `size` events is a new partition, named by its sequence range, and one run."""
    if len(events) < size and _worth_waiting(context, events, max_wait):
        return dg.SensorResult(skip_reason=f"waiting for a batch while runs are in flight: {len(events)} of {size} "
                                           "events")
    batches = [key for key, _ in batches_of(events, size)]
    return dg.SensorResult(
        dynamic_partitions_requests=[object_batches.build_add_request(batches)],
        run_requests=[dg.RunRequest(partition_key=key, run_key=f"batch:{key}") for key in batches],
        cursor=str(events[-1].seq),
    )


def _worth_waiting(context: dg.SensorEvaluationContext, events: list[InboxEvent], max_wait: float) -> bool:
    """A partial batch waits for more events only while a run keeps the workers busy, and not past
    `max_wait` after its oldest event arrived."""
    return time.time() - min(e.received_at for e in events) < max_wait and bool(context.instance.get_runs_count(
        IN_FLIGHT))


def build_stranded_sensor(job: UnresolvedAssetJobDefinition, settings: Settings) -> dg.SensorDefinition:
    """An ingest run can fail before it claims its versions: run monitoring fails one the daemon was killed
    while handing over (it stays STARTING), a run worker can die at start-up. Those versions are pending
    with nothing to send them again, since the inbox sensor's cursor has passed them and the sweep skips
    pending versions. This sensor asks for a run of exactly those (never one a run finished: that would
    extract it twice), up to `MEDIASIFT_MAX_ATTEMPTS` failed runs in a row; then they are dead-lettered
    with the failure as their reason. A batch partition is run again as a whole, and its run, seeing the
    re-drive tag, does only the versions still pending."""

    @dg.run_failure_sensor(
        name="stranded_versions_sensor",
        monitored_jobs=[job],
        request_job=job,
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=STRANDED_INTERVAL_S,
        description="Runs again the versions of a failed ingest run that it never reached.",
    )
    def stranded_versions_sensor(context: dg.RunFailureSensorContext, inbox: InboxResource):
        run = context.dagster_run
        keys = run_partition_keys(context.instance, run)
        box = inbox.get()
        versions = batch_work(box, keys).versions if settings.partition_mode == "batch" else keys
        pending = {h for h, record in box.versions(versions).items() if record.state is State.PENDING}
        if not pending:
            return dg.SkipReason(f"run {run.run_id} left no pending version")
        failed_runs = int(run.tags.get(REDRIVE_TAG, "0")) + 1
        if failed_runs >= settings.max_attempts:
            reason = (f"{failed_runs} ingest runs failed before reaching it (last {run.run_id}): "
                      f"{context.failure_event.message}")
            for version_hash in pending:
                box.mark_failed(version_hash, reason, dead_letter=True, attempt=failed_runs)
            return dg.SkipReason(f"dead-lettered {len(pending)} versions after {failed_runs} failed runs")
        tags = {REDRIVE_TAG: str(failed_runs)} | {t: v for t, v in run.tags.items() if t in (KIND_TAG, SEQ_TAG)}
        if settings.partition_mode == "batch":
            return _rerun(keys, tags, f"redrive:{run.run_id}")
        return [_rerun(chunk, tags, f"redrive:{run.run_id}:{chunk[0]}") for chunk in _stretches(keys, pending)]

    return stranded_versions_sensor


def run_partition_keys(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[str]:
    """The object-version partitions of an ingest run, in partition order."""
    if PARTITION_TAG in run.tags:
        return [run.tags[PARTITION_TAG]]
    start, end = run.tags.get(RANGE_START_TAG), run.tags.get(RANGE_END_TAG)
    if start is None or end is None:
        return []
    keys = instance.get_dynamic_partitions(object_versions.name)
    return keys[keys.index(start):keys.index(end) + 1]


def _stretches(keys: list[str], wanted: set[str]) -> list[list[str]]:
    """The runs of consecutive `wanted` keys: each can be one ranged run without taking in another key."""
    return [list(group) for is_wanted, group in groupby(keys, key=wanted.__contains__) if is_wanted]


def _rerun(chunk: list[str], tags: dict[str, str], run_key: str) -> dg.RunRequest:
    if len(chunk) == 1:
        return dg.RunRequest(partition_key=chunk[0], run_key=run_key, tags=tags)
    return dg.RunRequest(run_key=run_key, tags=tags | {RANGE_START_TAG: chunk[0], RANGE_END_TAG: chunk[-1]})
