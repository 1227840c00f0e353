"""The analysis commands as of a snapshot, on the real pipeline (SeaweedFS and its webhook, the sensor and the
ingest asset in-process, the packaged visual model): six photos and an exact copy of one are ingested and
snapshot `before` taken; then the copy is deleted and its delete event's run removes its rows (an unversioned
bucket: SeaweedFS sends no event for a versioned bucket's delete marker). `--as-of before` computes each view
from the object table the snapshot kept, so the pair is still there; the current view, and the analysis
assets' output written since, no longer have it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from mediasift.analysis import views
from mediasift.cli import app
from mediasift.identity import object_id
from mediasift.local.samples import photo
from mediasift.snapshots import Snapshots
from mediasift.store.s3 import ObjectStore
from tests.helpers import pipeline_resources, pipeline_settings, png, run, tick, wait_for_events

PHOTOS = ("chelsea", "coffee", "rocket", "astronaut", "motorcycle_left", "camera")
COPY = "copies/chelsea again.png"
TAXONOMY = """
version: 1
labels:
  - {name: cats, examples: [photos/chelsea.png]}
rules:
  - {name: duplicate-upload, when: {duplicate: any}}
"""


def small(name: str) -> bytes:
    picture = photo(name)
    picture.thumbnail((240, 240))
    return png(picture)


@pytest.fixture(scope="module")
def work(stack, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """A bucket of its own and the folder of its feature tables and index; the CLI's environment points at them."""
    bucket, folder = f"t-{uuid.uuid4().hex[:10]}", tmp_path_factory.mktemp("as-of")
    ObjectStore.from_settings(stack.settings).ensure_bucket(bucket)
    settings = pipeline_settings(stack.settings, bucket, folder)
    with pytest.MonkeyPatch.context() as env:
        for name, value in {"HOME": stack.settings.home, "S3_ENDPOINT_URL": stack.settings.s3_endpoint_url,
                            "BUCKET": bucket, "DERIVED_DIR": settings.derived_path,
                            "LANCE_URI": settings.lance_location}.items():
            env.setenv(f"MEDIASIFT_{name}", str(value))
        env.delenv("MEDIASIFT_TAXONOMY", raising=False)
        yield bucket, folder


@pytest.fixture(scope="module")
def indexed(stack, work) -> dict[str, dict]:
    """Each object of snapshot `before` (six photos and the copy) as the analysis JSON names it; the copy is
    deleted since, and that ingested too."""
    (bucket, folder), stack_inbox = work, stack.receiver.server.config.app.state.inbox
    storage = ObjectStore.from_settings(stack.settings)
    settings = pipeline_settings(stack.settings, bucket, folder)
    resources = pipeline_resources(stack.settings, bucket, folder)
    instance = dg.DagsterInstance.ephemeral()
    cursor = str(stack_inbox.last_seq())
    objects = {f"photos/{name}.png": small(name) for name in PHOTOS} | {COPY: small("chelsea")}
    refs = {}
    for key, body in objects.items():
        etag = storage.client.put_object(Bucket=bucket, Key=key, Body=body)["ETag"].strip('"')
        refs[key] = {"bucket": bucket, "key": key, "etag": etag, "object_id": object_id(bucket, key)}
    wait_for_events(stack_inbox, bucket, len(objects))
    sensed = tick(instance, resources, cursor, batch=len(objects))
    assert [run(instance, resources, request).success for request in sensed.run_requests] == [True]
    Snapshots(settings).create("before")

    storage.client.delete_object(Bucket=bucket, Key=COPY)
    wait_for_events(stack_inbox, bucket, len(objects) + 1)
    deleted = tick(instance, resources, sensed.cursor)
    assert [run(instance, resources, request).success for request in deleted.run_requests] == [True]
    return refs


def cli(*args: str) -> dict | str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if "--json" in args else result.output


def test_duplicates_as_of_a_snapshot_keep_the_pair_deleted_since(indexed, work):
    derived = work[1] / "derived"
    views.write_duplicates(views.analysis_dir(derived), views.duplicate_view(views.load_objects(derived)).groups)

    then, now = cli("duplicates", "--as-of", "before", "--json"), cli("duplicates", "--json")
    shown = cli("duplicates", "--as-of", "before")

    original = indexed["photos/chelsea.png"]
    assert then == {"as_of": "before", "groups": [{"kind": "exact", "representative": original, "members": [
        {**original, "reason": None}, {**indexed[COPY], "reason": "sha256"}]}]}
    assert now == {"groups": []}, "the copy's rows left with its delete, and the assets' output says so too"
    assert "duplicate groups (computed now from the object table) as of snapshot before" in shown
    assert f"s3://{original['bucket']}/{COPY}" in shown


def keys(report: dict, listed: str = "objects") -> list[str]:
    return sorted(o["key"] for o in report[listed])


def clustered(report: dict) -> list[str]:
    return sorted([m["key"] for c in report["clusters"] for m in c["members"]] + keys(report, "noise"))


def test_the_other_views_as_of_a_snapshot_describe_the_objects_it_held(indexed, tmp_path):
    taxonomy = tmp_path / "taxonomy.yaml"
    taxonomy.write_text(TAXONOMY)
    rules = ("--taxonomy", str(taxonomy))

    then, now = cli("anomalies", "--all", "--as-of", "before", "--json"), cli("anomalies", "--all", "--json")
    flagged_then, flagged_now = cli("flags", *rules, "--as-of", "before", "--json"), cli("flags", *rules, "--json")
    grouped_then, grouped_now = cli("clusters", "--as-of", "before", "--json"), cli("clusters", "--json")
    labelled = cli("classify", *rules, "--as-of", "before", "--json")

    photos = sorted(f"photos/{name}.png" for name in PHOTOS)
    assert then["as_of"] == "before" and "as_of" not in now
    assert keys(then) == sorted([*photos, COPY]) and keys(now) == photos
    assert grouped_then["as_of"] == "before" and clustered(grouped_then) == sorted([*photos, COPY])
    assert clustered(grouped_now) == photos
    assert labelled["as_of"] == "before" and keys(labelled) == sorted([*photos, COPY])
    assert next(o for o in labelled["objects"] if o["key"] == COPY)["labels"][0]["label"] == "cats"
    assert [(f["rule"], f["key"], f["reason"]) for f in flagged_then["flags"]] == [
        ("duplicate-upload", COPY,
         f"rule:duplicate-upload: exact duplicate of s3://{indexed[COPY]['bucket']}/photos/chelsea.png")]
    assert flagged_then["as_of"] == "before" and flagged_now == {"flags": []}


def test_an_unknown_snapshot_is_refused_by_name(work):
    result = CliRunner().invoke(app, ["clusters", "--as-of", "nosuch", "--json"])

    assert result.exit_code == 1
    assert "no snapshot 'nosuch'" in result.output
