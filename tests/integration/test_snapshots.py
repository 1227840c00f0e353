"""Snapshots on a real SeaweedFS (the `stack` fixture): manifests of object versions with bucket versioning on
and off, the feature-table files and Lance tags they keep, and reads as of a snapshot."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from mediasift.cli import app
from mediasift.errors import VersionChanged
from mediasift.snapshots import ForkUnsupported, SnapshotExists, Snapshots, StoreKind, UnknownSnapshot
from mediasift.snapshots.record import MANIFEST_FILE
from mediasift.store.lance import LanceIndex
from mediasift.store.parquet import FeatureTables
from mediasift.store.s3 import ObjectStore
from tests.helpers import pipeline_settings


@pytest.fixture
def s3(stack):
    return ObjectStore.from_settings(stack.settings).client


@pytest.fixture
def versioned(s3, bucket) -> str:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return bucket


def put(s3, bucket: str, key: str, body: bytes) -> tuple[str, str | None]:
    answer = s3.put_object(Bucket=bucket, Key=key, Body=body)
    return answer["ETag"].strip('"'), answer.get("VersionId")


def manifest(snapshots: Snapshots, name: str) -> dict[str, tuple]:
    rows = pq.read_table(snapshots.folder(name) / MANIFEST_FILE).to_pylist()
    return {r["key"]: (r["version_id"], r["etag"], r["size"]) for r in rows}


def test_manifests_name_exactly_the_versions_current_at_each_snapshot(stack, s3, versioned, tmp_path):
    snapshots = Snapshots(pipeline_settings(stack.settings, versioned, tmp_path))
    assert snapshots.kind is StoreKind.S3
    a1 = put(s3, versioned, "a.txt", b"a one")
    b1 = put(s3, versioned, "dir/b.txt", b"b one")
    c1 = put(s3, versioned, "c.txt", b"c one")
    s3.put_object(Bucket=versioned, Key="_mediasift/derived.bin", Body=b"our own output")

    first = snapshots.create("first")
    a2 = put(s3, versioned, "a.txt", b"a two, longer")
    s3.delete_object(Bucket=versioned, Key="dir/b.txt")
    d1 = put(s3, versioned, "d.txt", b"d one")
    second = snapshots.create("second")

    assert all(v[1] for v in (a1, b1, c1, a2, d1)), "versioning is on: every put got a VersionId"
    assert (first.versioned, first.objects, second.objects) == (True, 3, 3)
    assert manifest(snapshots, "first") == {"a.txt": (a1[1], a1[0], 5), "dir/b.txt": (b1[1], b1[0], 5),
                                            "c.txt": (c1[1], c1[0], 5)}
    assert manifest(snapshots, "second") == {"a.txt": (a2[1], a2[0], 13), "c.txt": (c1[1], c1[0], 5),
                                             "d.txt": (d1[1], d1[0], 5)}
    assert [r.name for r in snapshots.list()] == ["first", "second"]


def test_reading_by_the_manifests_version_id_returns_the_snapshot_time_bytes(stack, s3, versioned, tmp_path):
    snapshots = Snapshots(pipeline_settings(stack.settings, versioned, tmp_path))
    put(s3, versioned, "clip.txt", b"before")
    put(s3, versioned, "gone.txt", b"deleted later")
    snapshots.create("before")
    put(s3, versioned, "clip.txt", b"after the overwrite")
    s3.delete_object(Bucket=versioned, Key="gone.txt")

    snapshots.create("now")

    then, now = snapshots.reader("before"), snapshots.reader("now")
    assert (then.read("clip.txt"), then.read("gone.txt")) == (b"before", b"deleted later")
    assert now.read("clip.txt") == b"after the overwrite"
    assert now.head("gone.txt") is None and sorted(then.keys()) == ["clip.txt", "gone.txt"]


def test_without_versioning_the_manifest_has_etags_and_an_overwritten_object_reads_as_changed(
        stack, s3, bucket, tmp_path):
    snapshots = Snapshots(pipeline_settings(stack.settings, bucket, tmp_path))
    etag, _ = put(s3, bucket, "doc.txt", b"one")
    record = snapshots.create("plain")
    assert record.versioned is False
    assert manifest(snapshots, "plain") == {"doc.txt": (None, etag, 3)}
    assert snapshots.reader("plain").read("doc.txt") == b"one"
    put(s3, bucket, "doc.txt", b"two")
    with pytest.raises(VersionChanged, match="not versioned"):
        snapshots.reader("plain").read("doc.txt")


def test_a_snapshot_tags_the_index_keeps_the_feature_files_and_records_the_inbox(stack, s3, versioned, tmp_path):
    settings = pipeline_settings(stack.settings, versioned, tmp_path)
    tables = FeatureTables(settings.derived_path)
    tables.write("transcript", "obj1", "v1", pa.table({"text": ["said before"]}))
    index = LanceIndex(settings.lance_location)
    index.db.create_table("transcript", pa.table({"version_hash": ["v1"], "text": ["said before"]}))
    snapshots = Snapshots(settings)

    record = snapshots.create("tagged")
    tables.write("transcript", "obj1", "v1", pa.table({"text": ["said after a re-run"]}))
    index.table("transcript").add(pa.table({"version_hash": ["v2"], "text": ["new"]}))

    assert record.lance_versions == {"transcript": 1} and record.feature_files == 1
    assert record.inbox is not None and record.inbox.last_seq >= 0
    kept = snapshots.folder("tagged") / "features" / "transcript" / "object_id=obj1" / "v1.parquet"
    assert pq.read_table(kept)["text"].to_pylist() == ["said before"]
    assert snapshots.index("tagged").table("transcript").count_rows() == 1
    assert index.table("transcript").count_rows() == 2


def test_names_are_unique_unknown_ones_are_named_and_forks_need_tigris(stack, versioned, tmp_path):
    snapshots = Snapshots(pipeline_settings(stack.settings, versioned, tmp_path))
    snapshots.create("once")
    with pytest.raises(SnapshotExists, match="'once' exists already"):
        snapshots.create("once")
    with pytest.raises(UnknownSnapshot, match="no snapshot 'never'"):
        snapshots.get("never")
    with pytest.raises(ForkUnsupported, match="only Tigris forks"):
        snapshots.fork("once", "copy")


def test_snapshot_commands_create_list_and_refuse_with_clear_errors(stack, versioned, tmp_path, monkeypatch):
    for name, value in {"HOME": stack.settings.home, "S3_ENDPOINT_URL": stack.settings.s3_endpoint_url,
                        "BUCKET": versioned, "DERIVED_DIR": tmp_path / "derived",
                        "LANCE_URI": tmp_path / "lance"}.items():
        monkeypatch.setenv(f"MEDIASIFT_{name}", str(value))
    ObjectStore.from_settings(stack.settings).client.put_object(Bucket=versioned, Key="k.txt", Body=b"k")
    runner = CliRunner()

    created = runner.invoke(app, ["snapshot", "create", "cli-one", "--json"])
    listed = runner.invoke(app, ["snapshot", "list", "--json"])
    shown = runner.invoke(app, ["snapshot", "list"])
    again = runner.invoke(app, ["snapshot", "create", "cli-one"])
    forked = runner.invoke(app, ["snapshot", "fork", "cli-one", "elsewhere"])
    unknown = runner.invoke(app, ["snapshot", "fork", "nope", "elsewhere"])
    bad = runner.invoke(app, ["snapshot", "create", "no spaces"])

    assert created.exit_code == 0, created.output
    assert json.loads(created.output)["objects"] == 1
    assert [(r["name"], r["bucket"], r["store"]) for r in json.loads(listed.output)] == [("cli-one", versioned, "s3")]
    assert shown.exit_code == 0 and "cli-one" in shown.output and "manifest" in shown.output
    assert (again.exit_code, forked.exit_code, unknown.exit_code, bad.exit_code) == (1, 1, 1, 1)
    assert "exists already" in again.output and "only Tigris forks" in forked.output
    assert "no snapshot 'nope'" in unknown.output and "letters, digits" in bad.output
