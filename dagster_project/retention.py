"""Partitions of removed versions leave Dagster (DESIGN §3, scale note): a bucket whose objects are overwritten
and deleted would otherwise grow partitions without bound, past what Dagster's UI can page through, although
the runs they record stay in the event log and the versions' states stay in the inbox."""

import math
import time

import dagster as dg

from dagster_project.partitions import ingest_partitions
from mediasift.config import Settings
from mediasift.run.batches import expired_batches
from resources import InboxResource

RETENTION_INTERVAL_S = 300
RETENTION_BATCH = 1000
"""Removed versions looked at per tick: a tick stays well inside Dagster's 60 s sensor timeout."""


def build_retention_sensor(settings: Settings) -> dg.SensorDefinition:
    """Its cursor is the last-change time of the removed versions it has looked at: a version's state is
    final once deleted or superseded, unless the same bytes are uploaded again, and then the inbox sensor adds
    its partition again."""
    partitions = ingest_partitions(settings.partition_mode)

    @dg.sensor(
        name="partition_retention_sensor",
        minimum_interval_seconds=RETENTION_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Removes the {partitions.name} partitions of object versions deleted or superseded more than "
                    "MEDIASIFT_PARTITION_RETENTION_S ago (in batch mode: of batches whose every version is).",
    )
    def partition_retention_sensor(context: dg.SensorEvaluationContext, inbox: InboxResource) -> dg.SensorResult:
        box = inbox.get()
        since = float(context.cursor or 0)
        cutoff = time.time() - settings.partition_retention_s
        removed = box.removed_between(since, cutoff, RETENTION_BATCH)
        if not removed:
            return dg.SensorResult(skip_reason="no version was removed since the last pass")
        if settings.partition_mode == "batch":
            existing = partitions.get_partition_keys(dynamic_partitions_store=context.instance)
            gone = expired_batches(box, existing, removed, cutoff)
        else:
            gone = [r.version_hash for r in removed if context.instance.has_dynamic_partition(partitions.name,
                                                                                              r.version_hash)]
        last = removed[-1].updated_at
        next_since = last if last > since else math.nextafter(since, math.inf)
        return dg.SensorResult(
            dynamic_partitions_requests=[partitions.build_delete_request(gone)] if gone else [],
            cursor=repr(next_since),
            skip_reason=None if gone else f"none of {len(removed)} removed versions holds a partition to remove",
        )

    return partition_retention_sensor
