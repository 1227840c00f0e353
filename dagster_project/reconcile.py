import dagster as dg

from mediasift.errors import LockHeld
from mediasift.reconcile import sweep
from resources import InboxResource, S3StorageResource


@dg.op(description="List the bucket and enqueue every object version or deletion the inbox missed.")
def reconcile_bucket(context: dg.OpExecutionContext, inbox: InboxResource, s3: S3StorageResource) -> None:
    try:
        result = sweep(inbox.get(), s3.get(), s3.bucket, ignore_prefix=s3.ignore_prefix)
    except LockHeld as held:
        context.log.info(f"skipped, another sweep holds the lock: {held}")
        return
    context.log.info(f"bucket={result.bucket} listed={result.listed} missed_created={result.created} "
                     f"missed_deleted={result.deleted}")


@dg.job(description="Repair the inbox from a bucket listing: the webhook may lose events (SeaweedFS delivers "
                    "at most once) and the receiver may have been down.")
def reconcile_job() -> None:
    reconcile_bucket()
