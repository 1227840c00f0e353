"""S3 access for every store (SeaweedFS, Tigris, MinIO, AWS): pinned reads, listing, uploads.

Throttling (429, 503 SlowDown) is retried by botocore's adaptive retry mode: capped exponential
backoff with jitter plus client-side rate limiting.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import boto3
import filetype
from botocore.config import Config
from botocore.exceptions import ClientError

from mediasift.config import Settings, secret
from mediasift.errors import ObjectReadError, StoreNotConfigured, VersionChanged
from mediasift.identity import ObjectVersion, normalize_etag

CHUNK = 1 << 20
SNIFF_BYTES = 8192


@dataclass(frozen=True)
class Head:
    etag: str
    size: int


@dataclass(frozen=True)
class Fetched:
    """What reading one version yielded: content facts computed while streaming the bytes."""

    size: int
    sha256: str
    content_type: str


RETRY_MODE = "adaptive"
MAX_ATTEMPTS = 8


class ObjectStore:
    """Takes any boto3 S3 client: the Dagster side hands in dagster-aws's, everything else `from_settings`."""

    def __init__(self, client):
        self.client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> ObjectStore:
        """Only ever the configured endpoint: with none, boto3 would sign for AWS S3 with whatever keys
        it finds, so that is an error instead."""
        if not settings.s3_endpoint_url:
            raise StoreNotConfigured(
                f"no S3 endpoint: the embedded stack under {settings.home} is not running (start it with "
                "`mediasift up`), and MEDIASIFT_S3_ENDPOINT_URL is not set (AWS S3: "
                f"https://s3.{settings.s3_region}.amazonaws.com, Tigris: https://t3.storage.dev)")
        return cls(s3_client(settings.s3_endpoint_url, settings.s3_region, secret(settings.s3_access_key),
                             secret(settings.s3_secret_key)))

    def ensure_bucket(self, bucket: str) -> None:
        try:
            self.client.head_bucket(Bucket=bucket)
        except ClientError as error:
            if _status(error) not in (403, 404):
                raise
            self.client.create_bucket(Bucket=bucket)

    def head(self, bucket: str, key: str) -> Head | None:
        """The current version of a key, or None when it does not exist."""
        try:
            response = self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if _status(error) == 404:
                return None
            raise
        return Head(normalize_etag(response["ETag"]), response["ContentLength"])

    def read(self, version: ObjectVersion, dest: Path) -> Fetched:
        """Stream the exact notified version (If-Match on the ETag, or its VersionId) to `dest`, hashing
        as it goes so memory stays bounded whatever the object's size (renamed into place only when
        complete)."""
        pin = {"VersionId": version.version_id} if version.version_id else {"IfMatch": f'"{version.etag}"'}
        try:
            body = self.client.get_object(Bucket=version.bucket, Key=version.key, **pin)["Body"]
        except ClientError as error:
            if _status(error) == 412:
                raise VersionChanged(f"{version.uri} no longer has etag {version.etag}") from error
            raise ObjectReadError(
                f"cannot read {version.uri} (etag {version.etag}): {_code(error)} {_status(error)}"
            ) from error
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_suffix(".partial")
        try:
            with open(partial, "wb") as sink:
                fetched = _digest_stream(body, sink)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(dest)
        return fetched

    def list_objects(self, bucket: str) -> Iterator[tuple[str, Head]]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                yield item["Key"], Head(normalize_etag(item["ETag"]), item["Size"])

    def upload(self, path: Path, bucket: str, key: str, callback=None) -> str:
        """Upload a file (multipart when large); returns the stored ETag."""
        self.client.upload_file(str(path), bucket, key, Callback=callback)
        head = self.head(bucket, key)
        if head is None:
            raise ObjectReadError(f"s3://{bucket}/{key} vanished right after upload")
        return head.etag


def s3_client(endpoint_url: str, region: str, access_key: str | None, secret_key: str | None):
    """Every mediasift S3 client, the Dagster side's included: path-style addressing (SeaweedFS, MinIO and
    Tigris all accept it) and botocore's adaptive retries, which back off on 429/503 SlowDown."""
    return boto3.client(
        "s3", endpoint_url=endpoint_url, region_name=region, aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(retries={"mode": RETRY_MODE, "max_attempts": MAX_ATTEMPTS}, s3={"addressing_style": "path"},
                      signature_version="s3v4"))


def _digest_stream(stream: BinaryIO, sink: BinaryIO) -> Fetched:
    sha = hashlib.sha256()
    size = 0
    start = b""
    for chunk in iter(lambda: stream.read(CHUNK), b""):
        if len(start) < SNIFF_BYTES:
            start += chunk[: SNIFF_BYTES - len(start)]
        sha.update(chunk)
        size += len(chunk)
        sink.write(chunk)
    return Fetched(size, sha.hexdigest(), sniff_content_type(start))


def sniff_content_type(start: bytes) -> str:
    """The content type from the bytes themselves (never trust the extension or the header)."""
    kind = filetype.guess(start)
    if kind is not None:
        return kind.mime
    if not start:
        return "application/x-empty"
    if b"\x00" in start:
        return "application/octet-stream"
    try:
        start.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(start) - 4:
            return "application/octet-stream"
    return "text/plain"


def _status(error: ClientError) -> int | None:
    return error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "Error")
