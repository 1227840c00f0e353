"""A replay as a Dagster backfill, end to end: the stack with `dagster dev` (webserver and daemon) over a
versioned SeaweedFS bucket, three PDFs ingested through the real event path, a snapshot, one of them
overwritten and ingested again, then `mediasift replay --snapshot --into --backfill --wait --json` as a user
runs it. The daemon's runs fill the namespace with the snapshot's versions, one materialization each."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.storage.tags import BACKFILL_ID_TAG

from assets.replay import NAMESPACE_TAG, REPLAYED, SNAPSHOT_TAG
from mediasift.config import Settings
from mediasift.extraction.layers.rows import LAYERS
from mediasift.inbox import Inbox, State
from mediasift.local.stack import DagsterMode, Stack
from mediasift.snapshots import Snapshots
from mediasift.snapshots.namespace import Namespace
from mediasift.snapshots.replay import snapshot_versions
from mediasift.store.lance import LanceIndex
from mediasift.store.parquet import FeatureTables
from mediasift.store.s3 import ObjectStore
from tests.e2e.test_backfill import DagsterUI
from tests.helpers import pdf_bytes, wait_for
from tests.integration.test_replay import live_state, rows

REPORTS = {"reports/lisbon.pdf": "Lisbon", "reports/osaka.pdf": "Osaka", "reports/nairobi.pdf": "Nairobi"}
OVERWRITTEN = "reports/osaka.pdf"
CLI = Path(sys.executable).parent / "mediasift"


def settle(ui: DagsterUI, inbox: Inbox, bucket: str, etags: dict[str, str]) -> None:
    """Each report's current version (by its ETag) is indexed and no ingest run is left in flight."""
    wait_for(lambda: all(State.DONE in {v.state for v in inbox.versions_of(bucket, key) if v.etag == etag}
                         for key, etag in etags.items()), 600, "the reports' current versions to be indexed",
             interval=1)
    wait_for(lambda: ui.runs_in_flight() == 0, 120, "the ingest runs to end", interval=1)


def put(client, bucket: str, key: str, text: str) -> str:
    return client.put_object(Bucket=bucket, Key=key, Body=pdf_bytes(text))["ETag"].strip('"')


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_a_replay_backfill_materialises_each_snapshot_version_once_into_the_namespace(tmp_path):
    with Stack(Settings(home=tmp_path / "home"), DagsterMode.DEV) as stack:
        ui = DagsterUI(stack.dagster_url)
        ui.stop_sensor("analysis_sensor")  # its refresh runs would only compete with the replay for the CPU
        settings, bucket = stack.settings, stack.settings.bucket
        client = ObjectStore.from_settings(settings).client
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        inbox = Inbox(settings.inbox_url)
        etags = {key: put(client, bucket, key, f"The harbour inspection report from {city}.")
                 for key, city in REPORTS.items()}
        settle(ui, inbox, bucket, etags)
        snapshots = Snapshots(settings)
        snapshots.create("before")
        etags[OVERWRITTEN] = put(client, bucket, OVERWRITTEN, "The Osaka report, second draft.")
        settle(ui, inbox, bucket, etags)
        held = snapshot_versions(snapshots.reader("before"))
        live = settings.model_copy(update={"derived_dir": settings.derived_path})  # what live_state reads
        live_before = live_state(live)

        env = {**os.environ, "MEDIASIFT_HOME": str(stack.home)}
        replay = subprocess.run([str(CLI), "replay", "--snapshot", "before", "--into", "retrain", "--backfill",
                                 "--wait", "--json"], env=env, capture_output=True, text=True, timeout=1800)

        assert replay.returncode == 0, replay.stderr
        answer = json.loads(replay.stdout)
        assert (answer["snapshot"], answer["namespace"], answer["status"]) == ("before", "retrain",
                                                                               "COMPLETED_SUCCESS")
        assert sorted(answer["partitions"]) == sorted(v.version_hash for v in held)
        instance = dg.DagsterInstance.from_config(str(stack.dagster_home))
        backfill_id = answer["backfill_id"]
        assert instance.get_backfill(backfill_id).status is BulkActionStatus.COMPLETED_SUCCESS
        runs = instance.get_runs(dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}))
        assert runs and {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
        assert all((r.tags[SNAPSHOT_TAG], r.tags[NAMESPACE_TAG]) == ("before", "retrain") for r in runs)
        replayed = instance.fetch_materializations(REPLAYED, limit=1000).records
        assert sorted(r.partition_key for r in replayed) == sorted(answer["partitions"]), "once per version"
        assert {r.run_id for r in replayed} <= {r.run_id for r in runs}
        for record in replayed:
            event = record.asset_materialization
            assert (event.tags[NAMESPACE_TAG], event.tags[SNAPSHOT_TAG]) == ("retrain", "before")
            assert event.metadata["state"].value == "done" and event.metadata["pages_rows"].value == 1

        namespace = Namespace.of(settings, "retrain")
        keep = {(v.key, v.etag) for v in held}
        snapshot_tables = FeatureTables(snapshots.folder("before") / "features")
        replayed_tables, replayed_index = FeatureTables(namespace.derived_dir), LanceIndex(namespace.lance_uri)
        pinned = snapshots.index("before")
        for layer in LAYERS:
            assert rows(replayed_tables.read(layer)) == rows(snapshot_tables.read(layer), keep), f"features {layer}"
            indexed, index_rows = pinned.table(layer), replayed_index.table(layer)
            assert rows(index_rows and index_rows.to_arrow()) == rows(indexed and indexed.to_arrow()), f"index {layer}"
        pages = rows(replayed_tables.read("pages"))
        assert sorted((r["key"], r["etag"]) for r in pages) == sorted(keep), "the snapshot's versions, not today's"
        assert namespace.get().states == {"done": 3}
        assert live_state(live) == live_before, "the live index and feature tables were not written"
        inbox.close()
