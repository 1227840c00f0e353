import dagster as dg

from dagster_project.partitions import KIND_TAG, object_versions
from mediasift.events.models import EventKind
from mediasift.source import process_version
from resources import InboxResource, IndexResource, S3StorageResource

SOURCE_RETRY = dg.RetryPolicy(max_retries=2, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
"""Three attempts in all (DESIGN §7); the last failure puts the version in the dead-letter queue."""


@dg.asset(
    key=["mediasift", "source_object"],
    partitions_def=object_versions,
    group_name="source",
    kinds={"s3"},
    retry_policy=SOURCE_RETRY,
)
def source_object(context: dg.AssetExecutionContext, inbox: InboxResource, s3: S3StorageResource,
                  index: IndexResource) -> dg.MaterializeResult:
    """One object version as it really is in the bucket.

    HEADs the object and reads exactly the notified ETag (If-Match) or VersionId. An object overwritten
    since its notification is recorded as **superseded**, a vanished one or a delete event as
    **deleted**; otherwise the bytes are hashed (sha256) and their content type sniffed. Metadata
    carries the lineage: bucket, key, etag, version, size, content type, sha256.
    """
    kind = EventKind(context.run.tags.get(KIND_TAG, EventKind.CREATED.value))
    outcome = process_version(
        inbox.get(), s3.get(), context.partition_key, kind,
        run_id=context.run.run_id, attempt=context.retry_number + 1, max_attempts=inbox.max_attempts,
        lease_seconds=inbox.lease_seconds, spool=index.get().spool_path(context.partition_key),
    )
    return dg.MaterializeResult(metadata={**outcome.metadata(), "uri": outcome.version.uri})
