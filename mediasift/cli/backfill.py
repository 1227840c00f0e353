"""Submitting and following a Dagster asset backfill through the webserver's GraphQL API, as the UI's
"Materialize…" dialog does. The CLI is part of the core and does not import Dagster; the webserver (which
`mediasift up` runs) is the instance's front door, and what it launches shows in the UI as the user's own."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

LAUNCH = """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
  ... on InvalidSubsetError { message } ... on UnauthorizedError { message } } }"""
ADD_PARTITION = """mutation($repo: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $repo, partitionsDefName: $name, partitionKey: $key) {
  __typename ... on PythonError { message } ... on UnauthorizedError { message } } }"""
ASSET = """query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { __typename
  ... on AssetNode { partitionKeys repository { name location { name } } } } }"""
STATUS = """query($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
  ... on PartitionBackfill { status assetBackfillData { assetBackfillStatuses {
  ... on AssetPartitionsStatusCounts { numPartitionsMaterialized } } } } } }"""
ENDED = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


class BackfillError(Exception):
    """The webserver refused or could not be reached; the message says which."""


@dataclass(frozen=True)
class BackfillState:
    status: str
    materialized: int

    @property
    def ended(self) -> bool:
        return self.status in ENDED


class DagsterWebserver:
    def __init__(self, url: str):
        self.url = f"{url.rstrip('/')}/graphql"

    def _call(self, query: str, **variables: object) -> dict:
        try:
            answer = httpx.post(self.url, json={"query": query, "variables": variables}, timeout=120)
            answer.raise_for_status()
        except httpx.HTTPError as error:
            raise BackfillError(f"the Dagster webserver at {self.url} did not answer: {error}") from error
        body = answer.json()
        if body.get("errors"):
            raise BackfillError("; ".join(e["message"] for e in body["errors"]))
        return body["data"]

    def launch(self, asset_path: list[str], partitions_def: str, partitions: list[str], tags: dict[str, str],
               title: str, description: str) -> str:
        """One asset backfill of `partitions` (dynamic partitions that do not exist yet are added first);
        its id."""
        node = self._call(ASSET, key={"path": asset_path})["assetNodeOrError"]
        if node["__typename"] != "AssetNode":
            raise BackfillError(f"the webserver's code location has no asset {'/'.join(asset_path)}")
        repo = {"repositoryName": node["repository"]["name"],
                "repositoryLocationName": node["repository"]["location"]["name"]}
        known = set(node["partitionKeys"])
        for key in (p for p in partitions if p not in known):
            _ok(self._call(ADD_PARTITION, repo=repo, name=partitions_def, key=key)["addDynamicPartition"])
        launched = self._call(LAUNCH, params={
            "partitionNames": partitions, "assetSelection": [{"path": asset_path}], "title": title,
            "description": description, "tags": [{"key": k, "value": v} for k, v in tags.items()]},
        )["launchPartitionBackfill"]
        _ok(launched)
        return launched["backfillId"]

    def state(self, backfill_id: str) -> BackfillState:
        found = self._call(STATUS, id=backfill_id)["partitionBackfillOrError"]
        _ok(found)
        statuses = (found.get("assetBackfillData") or {}).get("assetBackfillStatuses") or []
        return BackfillState(found["status"], sum(s.get("numPartitionsMaterialized", 0) for s in statuses))


def _ok(result: dict) -> None:
    if result["__typename"] not in ("LaunchBackfillSuccess", "AddDynamicPartitionSuccess", "PartitionBackfill"):
        raise BackfillError(f"{result['__typename']}: {result.get('message', '')}")
