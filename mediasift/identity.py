"""Object identity: every derived thing points back to bucket + key + ETag (+ versionId).

Raw keys may hold `..`, newlines or 1,000+ characters, so they never become partition keys or paths:
those use the short hashes defined here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


def normalize_etag(etag: str | None) -> str:
    """ETags without quotes, lower-case; multipart `md5-N` kept as it is."""
    if not etag:
        return ""
    return etag.strip().strip('"').lower()


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:16]


def object_id(bucket: str, key: str) -> str:
    return _digest(bucket, key)


PARTITIONS = "object_versions"
"""The name of the Dagster dynamic partitions whose keys are version hashes."""
BATCH_PARTITIONS = "object_batches"
"""The name of the Dagster dynamic partitions whose keys are inbox sequence ranges (`mediasift.run.batches`)."""


def version_hash(bucket: str, key: str, etag: str, version_id: str | None = None) -> str:
    """The Dagster partition key of one object version."""
    return _digest(bucket, key, normalize_etag(etag), version_id or "")


@dataclass(frozen=True)
class ObjectVersion:
    bucket: str
    key: str
    etag: str
    version_id: str | None = None
    size: int | None = None
    content_type: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "etag", normalize_etag(self.etag))

    @property
    def object_id(self) -> str:
        return object_id(self.bucket, self.key)

    @property
    def version_hash(self) -> str:
        return version_hash(self.bucket, self.key, self.etag, self.version_id)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def lineage(self) -> dict[str, str | None]:
        """The fields every derived row carries (DESIGN §2)."""
        return {
            "bucket": self.bucket,
            "key": self.key,
            "etag": self.etag,
            "version_id": self.version_id,
            "object_id": self.object_id,
        }


def parse_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"expected s3://BUCKET/KEY, got {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    if not bucket or not key:
        raise ValueError(f"expected s3://BUCKET/KEY, got {uri!r}")
    return bucket, key
