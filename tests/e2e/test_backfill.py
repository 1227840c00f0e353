"""A backfill as the Dagster UI launches one, end to end: the stack with `dagster dev` (webserver and daemon),
PDFs uploaded to SeaweedFS and ingested through webhook → receiver → inbox → sensor → runs, then the
`launchPartitionBackfill` mutation the UI sends, over HTTP to the webserver's /graphql."""

from collections import Counter

import dagster as dg
import httpx
import pytest
from dagster._core.storage.tags import BACKFILL_ID_TAG

from mediasift.config import Settings
from mediasift.extraction.models import models_for
from mediasift.inbox import Inbox, State
from mediasift.local.stack import DagsterMode, Stack
from mediasift.query.search import Searcher
from mediasift.run.batches import batch_range
from mediasift.store.lance import LanceIndex
from mediasift.store.s3 import ObjectStore
from tests.helpers import pdf_bytes, wait_for

SOURCE = dg.AssetKey(["mediasift", "source_object"])
PAGES = dg.AssetKey(["mediasift", "pages"])
OBJECT_VERSION = [SOURCE, *(dg.AssetKey(["mediasift", layer])
                            for layer in ("transcript", "scenes", "visual", "pages", "entities"))]
"""What the UI's backfill dialog selects for source_object: the whole multi-asset, which cannot be split."""
REPORTS = {"reports/lisbon.pdf": "Lisbon", "reports/osaka.pdf": "Osaka", "reports/nairobi.pdf": "Nairobi"}
IN_FLIGHT = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"]
ENDED = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


class DagsterUI:
    """The webserver's GraphQL endpoint, called as the UI calls it."""

    def __init__(self, url: str):
        self.url = f"{url}/graphql"

    def __call__(self, query: str, **variables: object) -> dict:
        answer = httpx.post(self.url, json={"query": query, "variables": variables}, timeout=60).json()
        assert not answer.get("errors"), answer["errors"]
        return answer["data"]

    def stop_sensor(self, name: str) -> None:
        (repository,) = self("""{ repositoriesOrError { ... on RepositoryConnection {
                                  nodes { name location { name } } } } }""")["repositoriesOrError"]["nodes"]
        selector = {"repositoryLocationName": repository["location"]["name"],
                    "repositoryName": repository["name"], "sensorName": name}
        state = self("""query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) {
                          ... on Sensor { sensorState { id } } } }""", s=selector)["sensorOrError"]["sensorState"]
        stopped = self("""mutation($id: String!) { stopSensor(id: $id) { __typename } }""", id=state["id"])
        assert stopped["stopSensor"]["__typename"] == "StopSensorMutationResult", stopped

    def runs_in_flight(self) -> int:
        return self("""query($f: RunsFilter) { runsOrError(filter: $f) { ... on Runs { count } } }""",
                    f={"statuses": IN_FLIGHT})["runsOrError"]["count"]

    def launch_backfill(self, partitions: list[str]) -> str:
        """What the asset page's Materialize… dialog sends for chosen partitions (LaunchPartitionBackfill)."""
        params = {"assetSelection": [{"path": key.path} for key in OBJECT_VERSION], "partitionNames": partitions,
                  "fromFailure": False, "tags": []}
        launched = self("""mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
                             launchPartitionBackfill(backfillParams: $backfillParams) {
                               __typename ... on LaunchBackfillSuccess { backfillId }
                               ... on PythonError { message } ... on PartitionKeysNotFoundError { message } } }""",
                        backfillParams=params)["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        return launched["backfillId"]

    def backfill_status(self, backfill_id: str) -> str:
        found = self("""query($id: String!) { partitionBackfillOrError(backfillId: $id) {
                          ... on PartitionBackfill { status } } }""", id=backfill_id)
        return found["partitionBackfillOrError"]["status"]


def materialized_after(instance: dg.DagsterInstance, key: dg.AssetKey, storage_id: int) -> list:
    return instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key, after_storage_id=storage_id),
                                           limit=1000).records


def ingest_reports(stack: Stack) -> tuple[DagsterUI, Inbox, dg.DagsterInstance, int]:
    """The reports uploaded and indexed through the whole event path, every ingest run ended; returns the storage
    id after which a materialization is the backfill's."""
    ui = DagsterUI(stack.dagster_url)
    ui.stop_sensor("analysis_sensor")  # its refresh runs would only compete with the ingest runs for the CPU
    bucket = stack.settings.bucket
    client = ObjectStore.from_settings(stack.settings).client
    for key, city in REPORTS.items():
        client.put_object(Bucket=bucket, Key=key, Body=pdf_bytes(f"The harbour inspection report from {city}."))
    inbox = Inbox(stack.settings.inbox_url)
    wait_for(lambda: all([v.state for v in inbox.versions_of(bucket, key)] == [State.DONE] for key in REPORTS),
             600, "every report to be indexed", interval=1)
    instance = dg.DagsterInstance.from_config(str(stack.dagster_home))
    wait_for(lambda: ui.runs_in_flight() == 0 and len(instance.get_materialized_partitions(SOURCE)) == len(
        instance.get_dynamic_partitions(partitions_of(stack))), 120, "the ingest runs to end", interval=1)
    mark = max(r.storage_id for key in (SOURCE, PAGES) for r in materialized_after(instance, key, 0))
    return ui, inbox, instance, mark


def partitions_of(stack: Stack) -> str:
    return "object_batches" if stack.settings.partition_mode == "batch" else "object_versions"


def backfill(ui: DagsterUI, instance: dg.DagsterInstance, chosen: list[str]) -> set[str]:
    """Launch it, wait for its end; it and every run of it succeeded. Returns its runs."""
    backfill_id = ui.launch_backfill(chosen)
    status = wait_for(lambda: (s := ui.backfill_status(backfill_id)) in ENDED and s, 600,
                      f"backfill {backfill_id} to end", interval=1)
    assert status == "COMPLETED_SUCCESS"
    runs = instance.get_runs(dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}))
    assert runs and {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}, \
        "the backfill's status counts materialized partitions; its runs must have succeeded too"
    return {r.run_id for r in runs}


def assert_indexed_once(stack: Stack, keys: list[str]) -> None:
    searcher = Searcher(LanceIndex(stack.settings.lance_location), models_for(stack.settings))
    for key in keys:
        hits = searcher.search(f"harbour inspection report from {REPORTS[key]}", k=20)
        places = Counter((h.key, h.layer, h.page, h.text) for h in hits)
        assert max(places.values()) == 1, f"a row is in the index twice: {places}"
        assert [h.layer for h in hits if h.key == key].count("pages") == 1, hits


@pytest.mark.slow
def test_a_backfill_launched_through_graphql_rematerialises_exactly_the_chosen_partitions(tmp_path):
    with Stack(Settings(home=tmp_path / "home"), DagsterMode.DEV) as stack:
        ui, inbox, instance, mark = ingest_reports(stack)
        bucket = stack.settings.bucket
        hashes = {key: inbox.versions_of(bucket, key)[0].version_hash for key in REPORTS}
        order = instance.get_dynamic_partitions("object_versions")
        assert sorted(order) == sorted(hashes.values())
        chosen = [order[0], order[2]]  # not neighbours: a run over the range between them would take the third
        backfill_runs = backfill(ui, instance, chosen)

        for key in (SOURCE, PAGES):
            again = materialized_after(instance, key, mark)
            assert sorted(r.partition_key for r in again) == sorted(chosen), f"{key.to_user_string()}: once each"
            assert {r.run_id for r in again} <= backfill_runs, "every new materialization came from the backfill"
        assert [v.state for key in REPORTS for v in inbox.versions_of(bucket, key)] == [State.DONE] * 3
        assert_indexed_once(stack, [key for key, version_hash in hashes.items() if version_hash in chosen])
        inbox.close()


@pytest.mark.slow
def test_a_backfill_of_a_batch_partition_reextracts_exactly_the_versions_of_its_events(tmp_path):
    with Stack(Settings(home=tmp_path / "home", partition_mode="batch", run_batch_size=2), DagsterMode.DEV) as stack:
        ui, inbox, instance, mark = ingest_reports(stack)
        bucket = stack.settings.bucket
        batches = instance.get_dynamic_partitions("object_batches")
        assert 2 <= len(batches) <= 3 and not instance.get_dynamic_partitions("object_versions")
        chosen = batches[0]
        first, last = batch_range(chosen)
        in_batch = {e.key for e in inbox.events_after(first - 1, last - first + 1) if e.seq <= last}
        attempts = {key: inbox.versions_of(bucket, key)[0].attempts for key in REPORTS}
        backfill_runs = backfill(ui, instance, [chosen])

        for key in (SOURCE, PAGES):
            again = materialized_after(instance, key, mark)
            assert [r.partition_key for r in again] == [chosen], f"{key.to_user_string()}: the batch, once"
            assert {r.run_id for r in again} <= backfill_runs
        tried = {key for key in REPORTS if inbox.versions_of(bucket, key)[0].attempts > attempts[key]}
        assert tried == in_batch, "exactly the versions of the batch's events were extracted again"
        assert [v.state for key in REPORTS for v in inbox.versions_of(bucket, key)] == [State.DONE] * 3
        assert_indexed_once(stack, sorted(REPORTS))
        inbox.close()
