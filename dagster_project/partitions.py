import dagster as dg

from mediasift.identity import PARTITIONS

object_versions = dg.DynamicPartitionsDefinition(name=PARTITIONS)
"""One partition per object version, keyed by its version hash (never the raw key)."""

KIND_TAG = "mediasift/event_kind"
SEQ_TAG = "mediasift/event_seq"
