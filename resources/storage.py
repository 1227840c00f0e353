from functools import cache

import dagster as dg

from mediasift.storage import Storage


@cache
def _storage(endpoint_url: str, region: str, access_key_id: str, secret_access_key: str) -> Storage:
    return Storage(endpoint_url or None, access_key_id, secret_access_key, region)


class S3StorageResource(dg.ConfigurableResource):
    """The watched S3-compatible store (SeaweedFS locally, Tigris or AWS in production)."""

    endpoint_url: str = ""
    region: str = "us-east-1"
    bucket: str = "media"
    ignore_prefix: str = "_mediasift/"
    access_key_id: str
    secret_access_key: str

    def get(self) -> Storage:
        return _storage(self.endpoint_url, self.region, self.access_key_id, self.secret_access_key)
