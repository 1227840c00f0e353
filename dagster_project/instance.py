"""What mediasift needs of the Dagster instance it runs on, checked where the code location can see it."""

from pathlib import Path

import dagster as dg

INSTANCE_YAML = Path(__file__).with_name("dagster.yaml")
PARTITION_TAG = "dagster/partition"


def partition_limit_missing(instance: dg.DagsterInstance) -> str | None:
    """Why two runs of one object version could overlap on this instance, or None when they cannot."""
    get_config = getattr(instance.run_coordinator, "get_run_queue_config", None)
    if get_config is None:
        return (f"the instance's run coordinator ({type(instance.run_coordinator).__name__}) queues nothing: "
                f"use the QueuedRunCoordinator of {INSTANCE_YAML}")
    for limit in get_config().tag_concurrency_limits or []:
        value = limit.get("value")
        per_value = isinstance(value, dict) and value.get("applyLimitPerUniqueValue")
        if limit.get("key") == PARTITION_TAG and per_value and limit.get("limit") == 1:
            return None
    return (f"the instance has no one-run-per-partition limit (tag {PARTITION_TAG}, applyLimitPerUniqueValue, "
            f"limit 1): copy its tag_concurrency_limits from {INSTANCE_YAML}")
