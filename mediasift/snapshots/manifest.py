"""Snapshots on stores without native ones (SeaweedFS, MinIO, AWS S3): a manifest of object versions.

The manifest lists every current object of the bucket: key, VersionId (when bucket versioning is on) or
only the ETag, size and last-modified, as Parquet. With versioning on, the listed VersionIds stay readable
after an overwrite or delete, so the snapshot's bytes can be read back exactly; without it the manifest
still says what the bucket held, but an overwritten object's old bytes are gone (a read pinned by If-Match
then fails with VersionChanged).

The feature tables of the moment are kept too: each Parquet file is hard-linked into the snapshot (copied
when the snapshot folder is on another file system), because a re-run or a tombstone replaces or removes
the live file.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from botocore.exceptions import ClientError

from mediasift.errors import ObjectReadError, VersionChanged
from mediasift.identity import ObjectVersion, normalize_etag

MANIFEST_SCHEMA = pa.schema([
    pa.field("key", pa.string(), nullable=False),
    pa.field("version_id", pa.string()),
    pa.field("etag", pa.string(), nullable=False),
    pa.field("size", pa.int64(), nullable=False),
    pa.field("last_modified", pa.timestamp("us", tz="UTC"), nullable=False),
])
FEATURES_SCHEMA = pa.schema([
    pa.field("path", pa.string(), nullable=False),
    pa.field("size", pa.int64(), nullable=False),
    pa.field("mtime", pa.timestamp("ns", tz="UTC"), nullable=False),
])


def versioning_enabled(client, bucket: str) -> bool:
    return client.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled"


def current_versions(client, bucket: str, skip_prefix: str = "") -> tuple[pa.Table, bool]:
    """Every current object of `bucket` (keys under `skip_prefix`, mediasift's own output, left out) and
    whether their VersionIds were listed. With versioning on, the latest entry of each key is its current
    version, and a key whose latest entry is a delete marker is not in the bucket."""
    versioned = versioning_enabled(client, bucket)
    rows: list[dict] = []
    if versioned:
        for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
            rows += [_row(v, v["VersionId"]) for v in page.get("Versions", []) if v.get("IsLatest")]
    else:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            rows += [_row(item, None) for item in page.get("Contents", [])]
    if skip_prefix:
        rows = [r for r in rows if not r["key"].startswith(skip_prefix)]
    rows.sort(key=lambda r: r["key"])
    return pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA), versioned


def _row(item: dict, version_id: str | None) -> dict:
    return {"key": item["Key"], "version_id": version_id, "etag": normalize_etag(item["ETag"]),
            "size": item["Size"], "last_modified": item["LastModified"]}


def write_parquet(table: pa.Table, path: Path) -> Path:
    partial = path.with_suffix(".parquet.partial")
    pq.write_table(table, partial, compression="zstd")
    os.replace(partial, path)
    return path


def keep_feature_files(root: Path, into: Path, skip: tuple[Path, ...]) -> pa.Table:
    """Link (or copy) every Parquet file under the feature-table root `root` into `into`, at the same
    relative path, and return their list; the folders in `skip` (the snapshots themselves, the replay
    namespaces) are not the live tables and are left out."""
    rows = []
    for source in sorted(root.rglob("*.parquet")) if root.exists() else []:
        if any(source.is_relative_to(folder) for folder in skip):
            continue
        relative = source.relative_to(root)
        target = into / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except FileNotFoundError:
            continue  # removed (a tombstone) while we listed: it is not part of this moment
        except OSError:
            shutil.copy2(source, target)
        stat = target.stat()
        rows.append({"path": relative.as_posix(), "size": stat.st_size,
                     "mtime": datetime.fromtimestamp(stat.st_mtime_ns / 1e9, UTC)})
    return pa.Table.from_pylist(rows, schema=FEATURES_SCHEMA)


class ManifestReader:
    """Reads a bucket as a manifest recorded it: each object by its VersionId, or by If-Match on its ETag
    when the bucket was not versioned."""

    def __init__(self, client, bucket: str, manifest: pa.Table):
        self.client = client
        self.bucket = bucket
        self._rows = {row["key"]: row for row in manifest.to_pylist()}

    def keys(self) -> list[str]:
        return list(self._rows)

    def head(self, key: str) -> ObjectVersion | None:
        row = self._rows.get(key)
        if row is None:
            return None
        return ObjectVersion(self.bucket, key, row["etag"], row["version_id"], row["size"])

    def read(self, key: str) -> bytes:
        version = self.head(key)
        if version is None:
            raise ObjectReadError(f"s3://{self.bucket}/{key} was not in the bucket at this snapshot")
        pin = {"VersionId": version.version_id} if version.version_id else {"IfMatch": f'"{version.etag}"'}
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key, **pin)["Body"].read()
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 412:
                raise VersionChanged(f"{version.uri} was overwritten after the snapshot and the bucket is not "
                                     f"versioned: its etag {version.etag} is gone") from error
            raise ObjectReadError(f"cannot read {version.uri} as of the snapshot (etag {version.etag}, "
                                  f"version {version.version_id}): {error}") from error
