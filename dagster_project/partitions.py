import dagster as dg

from mediasift.config import PartitionMode
from mediasift.identity import BATCH_PARTITIONS, PARTITIONS

object_versions = dg.DynamicPartitionsDefinition(name=PARTITIONS)
"""One partition per object version, keyed by its version hash (never the raw key)."""
object_batches = dg.DynamicPartitionsDefinition(name=BATCH_PARTITIONS)
"""One partition per batch of inbox events, keyed by its sequence range (`mediasift.run.batches`)."""

KIND_TAG = "mediasift/event_kind"
SEQ_TAG = "mediasift/event_seq"
REDRIVE_TAG = "mediasift/redrive"
"""On a run the stranded-versions sensor requested: how many failed runs in a row its versions have had."""


def ingest_partitions(mode: PartitionMode) -> dg.DynamicPartitionsDefinition:
    """What a partition of the ingest assets is (`MEDIASIFT_PARTITION_MODE`): an object version, or a batch."""
    return object_batches if mode == "batch" else object_versions
