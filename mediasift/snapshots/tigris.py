"""Tigris's native snapshots and forks, through tigris-boto3-ext.

tigris-boto3-ext adds its headers with `before-sign` handlers registered on the client's event system, so
while one of its contexts is open every call of that operation on that client carries the header, from any
thread. Each operation here therefore gets a client of its own (`ClientFactory`). Clients made from one
Session each copy its event system, so handlers never cross between them; the Session is shared only to
load the S3 service model once, and clients are made from it under a lock (making them is not thread-safe).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import boto3
import tigris_boto3_ext as tigris
from botocore.config import Config
from botocore.exceptions import ClientError

from mediasift.config import Settings, secret
from mediasift.errors import ObjectReadError, StoreNotConfigured
from mediasift.identity import ObjectVersion, normalize_etag
from mediasift.snapshots.record import SnapshotError
from mediasift.store.s3 import MAX_ATTEMPTS, RETRY_MODE

ClientFactory = Callable[[], Any]
TIGRIS_HOSTS = (".storage.dev", ".tigris.dev")
"""Endpoint host suffixes of Tigris (t3.storage.dev, fly.storage.tigris.dev)."""


def client_factory(settings: Settings) -> ClientFactory:
    """A new S3 client per call, configured as `mediasift.store.s3.s3_client` configures its clients."""
    session = boto3.session.Session()
    lock = threading.Lock()

    def make():
        if not settings.s3_endpoint_url:
            raise StoreNotConfigured(f"no S3 endpoint for snapshots of {settings.bucket!r}: start the stack "
                                     "(`mediasift up`) or set MEDIASIFT_S3_ENDPOINT_URL")
        with lock:
            return session.client(
                "s3", endpoint_url=settings.s3_endpoint_url, region_name=settings.s3_region,
                aws_access_key_id=secret(settings.s3_access_key),
                aws_secret_access_key=secret(settings.s3_secret_key),
                config=Config(retries={"mode": RETRY_MODE, "max_attempts": MAX_ATTEMPTS},
                              s3={"addressing_style": "path"}, signature_version="s3v4"))

    return make


def is_tigris(endpoint_url: str | None) -> bool:
    host = urlsplit(endpoint_url or "").hostname or ""
    return any(host.endswith(suffix) or host == suffix[1:] for suffix in TIGRIS_HOSTS)


def take_snapshot(new_client: ClientFactory, bucket: str, name: str) -> str:
    """CreateBucket on the existing bucket with `X-Tigris-Snapshot: true; name=<name>`; returns the
    snapshot version Tigris answers in `X-Tigris-Snapshot-Version`."""
    client = new_client()
    try:
        version = tigris.get_snapshot_version(tigris.create_snapshot(client, bucket, snapshot_name=name))
    except ClientError as error:
        raise SnapshotError(_refusal(new_client, bucket, error)) from error
    if not version:
        raise SnapshotError(f"Tigris took no snapshot of bucket {bucket!r}: its answer had no "
                            "X-Tigris-Snapshot-Version header; is the endpoint really Tigris?")
    return version


def _refusal(new_client: ClientFactory, bucket: str, error: ClientError) -> str:
    """Why a snapshot was refused, in words: most often the bucket was made without snapshots."""
    try:
        enabled = tigris.has_snapshot_enabled(new_client(), bucket)
    except ClientError:
        enabled = None
    if enabled is False:
        return (f"bucket {bucket!r} was not created with snapshots enabled (X-Tigris-Enable-Snapshot: true); "
                "Tigris cannot enable them later: create a snapshot-enabled bucket, or fork into one")
    return f"Tigris refused a snapshot of bucket {bucket!r}: {error}"


def list_snapshots(new_client: ClientFactory, bucket: str) -> list[dict]:
    """The bucket's snapshots as Tigris lists them (ListBuckets with `X-Tigris-Snapshot: <bucket>`): each
    entry's Name is `<version>` or `<version>; name=<name>`."""
    answer = tigris.list_snapshots(new_client(), bucket)
    found = []
    for entry in answer.get("Buckets", []):
        version, _, name = entry["Name"].partition("; name=")
        found.append({"version": version.strip(), "name": name.strip() or None,
                      "created_at": entry["CreationDate"].isoformat() if entry.get("CreationDate") else None})
    return found


def fork(new_client: ClientFactory, source: str, version: str, new_bucket: str) -> None:
    """CreateBucket `new_bucket` with `X-Tigris-Fork-Source-Bucket[-Snapshot]`: a copy-on-write bucket
    holding exactly what `source` held at snapshot `version`."""
    try:
        tigris.create_fork(new_client(), new_bucket, source, snapshot_version=version)
    except ClientError as error:
        raise SnapshotError(f"Tigris refused to fork {source!r} at snapshot {version} into {new_bucket!r}: "
                            f"{error}") from error


class TigrisReader:
    """Reads a bucket as of a Tigris snapshot (`X-Tigris-Snapshot-Version` on Get/Head/ListObjectsV2), each
    call on a fresh client so the header never reaches another caller's requests."""

    def __init__(self, new_client: ClientFactory, bucket: str, version: str):
        self.new_client = new_client
        self.bucket = bucket
        self.version = version

    def keys(self) -> list[str]:
        client = self.new_client()
        keys: list[str] = []
        with tigris.TigrisSnapshot(client, self.bucket, snapshot_version=self.version):
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
                keys += [item["Key"] for item in page.get("Contents", [])]
        return keys

    def head(self, key: str) -> ObjectVersion | None:
        try:
            answer = tigris.head_object_from_snapshot(self.new_client(), self.bucket, key, self.version)
        except ClientError as error:
            if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise
        return ObjectVersion(self.bucket, key, normalize_etag(answer["ETag"]), answer.get("VersionId"),
                             answer["ContentLength"])

    def read(self, key: str) -> bytes:
        try:
            answer = tigris.get_object_from_snapshot(self.new_client(), self.bucket, key, self.version)
        except ClientError as error:
            raise ObjectReadError(f"cannot read s3://{self.bucket}/{key} as of Tigris snapshot {self.version}: "
                                  f"{error}") from error
        return answer["Body"].read()
