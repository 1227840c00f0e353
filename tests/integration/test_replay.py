"""`mediasift replay` and `mediasift diff` on a real SeaweedFS with versioning on: PDFs ingested through the
real event path (webhook, receiver, sensor and asset in-process, real models and LanceDB), a snapshot, then
an overwrite, a delete and a new object ingested too. The replay of the snapshot into a namespace holds the
snapshot's rows row for row and leaves the live index alone; diff names exactly what changed."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from mediasift.cli import app
from mediasift.extraction.layers.rows import LAYERS
from mediasift.snapshots import Snapshots
from mediasift.snapshots.namespace import Namespace
from mediasift.snapshots.replay import snapshot_versions
from mediasift.store.lance import LanceIndex
from mediasift.store.parquet import FeatureTables
from mediasift.store.s3 import ObjectStore
from tests.helpers import pdf_bytes, pipeline_resources, pipeline_settings, run_new_events, wait_for_events

RUN_TIME_COLUMNS = ("created_at",)
"""Columns that say when a row was made, not what it is: the only ones a replay may change."""


def cli(*args: str) -> dict:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def rows(table: pa.Table | None, keep: set[tuple[str, str]] | None = None) -> list[dict]:
    """A table's rows without run-time columns, in a stable order; only those of the (key, etag) in `keep`."""
    if table is None:
        return []
    found = [{c: v for c, v in row.items() if c not in RUN_TIME_COLUMNS} for row in table.to_pylist()]
    if keep is not None:
        found = [r for r in found if (r["key"], r["etag"]) in keep]
    return sorted(found, key=lambda r: (r["version_hash"], r["row_no"]))


def live_state(settings) -> tuple[dict, list]:
    """The live index's table versions and the live feature files with their modification times."""
    index = LanceIndex(settings.lance_location)
    versions = {name: index.db.open_table(name).version for name in index.db.list_tables().tables}
    root = Path(settings.derived_dir)
    files = sorted((str(p.relative_to(root)), p.stat().st_mtime_ns) for p in root.rglob("*.parquet")
                   if not p.is_relative_to(root / "namespaces") and not p.is_relative_to(root / "snapshots"))
    return versions, files


@pytest.fixture
def history(stack, stack_inbox, tmp_path, monkeypatch) -> dict:
    """Given three PDFs ingested, snapshot `before`, then memo.pdf overwritten, budget.pdf deleted and
    later.pdf added, all ingested; the CLI's environment points at this bucket and its stores."""
    bucket = f"t-{uuid.uuid4().hex[:10]}"
    s3 = ObjectStore.from_settings(stack.settings)
    s3.ensure_bucket(bucket)
    s3.client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    resources = pipeline_resources(stack.settings, bucket, tmp_path)
    settings = pipeline_settings(stack.settings, bucket, tmp_path)
    cursor, events = str(stack_inbox.last_seq()), 0

    def step() -> None:
        nonlocal cursor
        wait_for_events(stack_inbox, bucket, events)
        cursor, _ = run_new_events(instance, resources, stack_inbox, cursor)

    def put(key: str, text: str) -> str:
        return s3.client.put_object(Bucket=bucket, Key=key, Body=pdf_bytes(text))["ETag"].strip('"')

    with dg.instance_for_test() as instance:
        etags = {"memo": put("memo.pdf", "The zebra crossing was repainted."),
                 "budget": put("budget.pdf", "Project Nightingale budget."),
                 "keep": put("keep.pdf", "Harbour lights at dawn.")}
        events += 3
        step()
        Snapshots(settings).create("before")
        etags["new_memo"] = put("memo.pdf", "A zebra escaped from the zoo overnight.")
        s3.client.delete_object(Bucket=bucket, Key="budget.pdf")
        etags["later"] = put("later.pdf", "Nightingale budget, second draft.")
        events += 2  # the delete marker of a versioned SeaweedFS bucket reaches the inbox by no event
        step()

    for name, value in {"HOME": tmp_path / "home", "S3_ENDPOINT_URL": stack.settings.s3_endpoint_url,
                        "BUCKET": bucket, "DERIVED_DIR": settings.derived_dir, "LANCE_URI": settings.lance_uri}.items():
        monkeypatch.setenv(f"MEDIASIFT_{name}", str(value))
    return {"settings": settings, "etags": etags}


def test_replay_reproduces_the_snapshots_layers_row_for_row_resumes_and_leaves_the_live_index_alone(history):
    settings = history["settings"]
    snapshots = Snapshots(settings)
    live_before = live_state(settings)

    summary = cli("replay", "--snapshot", "before", "--into", "retrain")
    again = cli("replay", "--snapshot", "before", "--into", "retrain")
    shown = CliRunner().invoke(app, ["replay", "--snapshot", "before", "--into", "retrain"])
    against_replay = cli("diff", "snapshot:before", "namespace:retrain")
    snapshots.create("after")
    other = CliRunner().invoke(app, ["replay", "--snapshot", "after", "--into", "retrain"])
    live = CliRunner().invoke(app, ["replay", "--snapshot", "after", "--into", "live"])

    assert (summary["versions"], summary["ran"], summary["states"], summary["failed"]) == (3, 3, {"done": 3}, [])
    assert summary["rows"]["pages"] == 3
    assert (again["ran"], again["skipped"], again["namespace_states"]) == (0, 3, {"done": 3})
    assert shown.exit_code == 0 and "3 done before" in shown.output
    assert live_state(settings) == live_before, "the live index and feature tables were not written"
    namespace = Namespace.of(settings, "retrain")
    held = {(v.key, v.etag) for v in snapshot_versions(snapshots.reader("before"))}
    snapshot_tables = FeatureTables(snapshots.folder("before") / "features")
    replayed_tables = FeatureTables(namespace.derived_dir)
    pinned, replayed_index = snapshots.index("before"), LanceIndex(namespace.lance_uri)
    compared = 0
    for layer in LAYERS:
        expected = rows(snapshot_tables.read(layer), held)
        assert rows(replayed_tables.read(layer)) == expected, f"feature table {layer}"
        indexed = pinned.table(layer)
        assert rows(replayed_index.table(layer) and replayed_index.table(layer).to_arrow()) == rows(
            indexed and indexed.to_arrow()), f"index table {layer}"
        compared += len(expected)
    assert compared > 3 and {r["key"] for r in rows(replayed_tables.read("pages"))} == {
        "memo.pdf", "budget.pdf", "keep.pdf"}
    assert against_replay["objects"] == {"added": [], "removed": [], "changed": [], "unchanged": 3}
    assert all(sides["a"] == sides["b"] for sides in against_replay["rows"].values())
    assert other.exit_code == 1 and "holds snapshot 'before'" in other.output
    assert live.exit_code == 1 and "names the live index" in live.output


def test_diff_names_exactly_the_changed_added_and_removed_objects(history):
    etags = history["etags"]
    Snapshots(history["settings"]).create("after")

    against_live = cli("diff", "before", "live", "--query", "zebra crossing repainted")
    between_snapshots = cli("diff", "before", "after")
    unknown = CliRunner().invoke(app, ["diff", "nothing", "live"])
    shown = CliRunner().invoke(app, ["diff", "before", "live", "-q", "zebra"])

    objects = against_live["objects"]
    assert [o["key"] for o in objects["added"]] == ["later.pdf"] and objects["added"][0]["etag"] == etags["later"]
    assert [o["key"] for o in objects["removed"]] == ["budget.pdf"]
    assert [(o["key"], o["a"]["etag"], o["b"]["etag"]) for o in objects["changed"]] == [
        ("memo.pdf", etags["memo"], etags["new_memo"])]
    assert objects["unchanged"] == 1
    (hits,) = against_live["queries"]
    assert (hits["a"][0]["key"], hits["a"][0]["etag"]) == ("memo.pdf", etags["memo"])
    assert etags["memo"] not in {h["etag"] for h in hits["b"]}
    pages = against_live["rows"]["pages"]
    assert (pages["a"]["features"], pages["a"]["index"], pages["b"]["features"]) == (3, 3, 3)
    # budget.pdf's delete marker reached the inbox by no event and no reconcile ran: its page may still be
    # in the live index, which is what the index count (beside the feature rows of live objects) shows.
    assert pages["b"]["index"] >= 3
    assert between_snapshots["objects"] == objects
    assert between_snapshots["rows"]["pages"] == pages, "a snapshot taken now counts what live counts"
    assert unknown.exit_code == 1 and "neither a snapshot nor a namespace" in unknown.output
    assert shown.exit_code == 0 and "memo.pdf" in shown.output and "changed" in shown.output
