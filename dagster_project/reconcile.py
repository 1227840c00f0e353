import dagster as dg

from mediasift.errors import LockHeld
from mediasift.intake.reconcile import sweep
from mediasift.store.s3 import ObjectStore
from resources import InboxResource, S3Resource, SettingsResource


@dg.op(description="List the bucket and enqueue every object version or deletion the inbox missed.")
def reconcile_bucket(context: dg.OpExecutionContext, settings: SettingsResource, inbox: InboxResource,
                     s3: S3Resource) -> None:
    config = settings.get()
    try:
        result = sweep(inbox.get(), ObjectStore(s3.get_client()), config.bucket, ignore_prefix=config.derived_prefix)
    except LockHeld as held:
        context.log.info(f"skipped, another sweep holds the lock: {held}")
        return
    context.log.info(f"bucket={result.bucket} listed={result.listed} missed_created={result.created} "
                     f"missed_deleted={result.deleted}")


@dg.job(description="Repair the inbox from a bucket listing: the webhook may lose events (SeaweedFS delivers "
                    "at most once) and the receiver may have been down.")
def reconcile_job() -> None:
    reconcile_bucket()
