import dagster as dg

object_versions = dg.DynamicPartitionsDefinition(name="object_versions")
"""One partition per object version, keyed by its version hash (never the raw key)."""

KIND_TAG = "mediasift/event_kind"
SEQ_TAG = "mediasift/event_seq"
