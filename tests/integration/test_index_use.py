"""`mediasift index use` on a real SeaweedFS with versioning on: two PDFs ingested through the real event path
(webhook, receiver, sensor and asset in-process, real models and LanceDB), a snapshot, then one PDF
overwritten and ingested, and the snapshot replayed into a namespace. Cutting search over to the namespace
finds the snapshot-time version of the overwritten PDF, in the CLI and in a running receiver's /search alike;
`index use live` finds the current one again."""

from __future__ import annotations

import json
import uuid

import dagster as dg
import httpx
import pytest
from typer.testing import CliRunner

from mediasift.cli import app
from mediasift.inbox import Inbox
from mediasift.intake.receiver import ReceiverServer, create_app
from mediasift.local.processes import LOOPBACK, free_port
from mediasift.snapshots import Snapshots
from mediasift.store.s3 import ObjectStore
from tests.helpers import pdf_bytes, pipeline_resources, pipeline_settings, run_new_events, wait_for_events

QUERY = "zebra crossing repainted"


def cli(*args: str) -> dict | list:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def replayed(stack, stack_inbox, tmp_path, monkeypatch) -> dict:
    """Given memo.pdf and keep.pdf ingested, snapshot `before`, memo.pdf overwritten and ingested, and
    `before` replayed into namespace `retrain`; the CLI's environment points at this bucket and its stores."""
    bucket = f"t-{uuid.uuid4().hex[:10]}"
    s3 = ObjectStore.from_settings(stack.settings)
    s3.ensure_bucket(bucket)
    s3.client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    resources = pipeline_resources(stack.settings, bucket, tmp_path)
    settings = pipeline_settings(stack.settings, bucket, tmp_path, home=tmp_path / "home")

    def put(key: str, text: str) -> str:
        return s3.client.put_object(Bucket=bucket, Key=key, Body=pdf_bytes(text))["ETag"].strip('"')

    with dg.instance_for_test() as instance:
        cursor = str(stack_inbox.last_seq())
        etags = {"old": put("memo.pdf", "The zebra crossing was repainted.")}
        put("keep.pdf", "Harbour lights at dawn.")
        wait_for_events(stack_inbox, bucket, 2)
        cursor, _ = run_new_events(instance, resources, stack_inbox, cursor)
        Snapshots(settings).create("before")
        etags["new"] = put("memo.pdf", "A zebra escaped from the zoo overnight.")
        wait_for_events(stack_inbox, bucket, 3)
        run_new_events(instance, resources, stack_inbox, cursor)

    for name, value in {"HOME": settings.home, "S3_ENDPOINT_URL": stack.settings.s3_endpoint_url,
                        "BUCKET": bucket, "DERIVED_DIR": settings.derived_dir, "LANCE_URI": settings.lance_uri}.items():
        monkeypatch.setenv(f"MEDIASIFT_{name}", str(value))
    assert cli("replay", "--snapshot", "before", "--into", "retrain")["namespace_states"] == {"done": 2}
    return {"settings": settings, "etags": etags}


@pytest.fixture
def receiver(replayed, tmp_path):
    """A receiver started before any cut-over, over the same stores, so it must follow `index use` live."""
    settings = replayed["settings"]
    server = ReceiverServer(create_app(settings, Inbox(settings.inbox_url)), LOOPBACK, free_port()).start()
    yield server.url
    server.stop()


def memo_etags(hits: list[dict]) -> list[str]:
    return [h["etag"] for h in hits if h["key"] == "memo.pdf"]


def served(url: str) -> dict:
    response = httpx.get(f"{url}/search", params={"q": QUERY, "layer": "pages", "k": 5}, timeout=300)
    assert response.status_code == 200, response.text
    return response.json()


def test_index_use_cuts_search_over_to_a_namespace_and_live_rolls_back(replayed, receiver):
    old, new = replayed["etags"]["old"], replayed["etags"]["new"]

    live_before = cli("search", QUERY, "--layer", "pages")
    served_live = served(receiver)
    used = cli("index", "use", "retrain")
    in_namespace = cli("search", QUERY, "--layer", "pages")
    served_namespace = served(receiver)
    shown = cli("index", "show")
    table = CliRunner().invoke(app, ["search", QUERY, "--layer", "pages"])
    back = cli("index", "use", "live")
    live_after = cli("search", QUERY, "--layer", "pages")
    served_after = served(receiver)

    assert memo_etags(live_before)[:1] == [new] and old not in memo_etags(live_before)
    assert served_live["index"] == "live" and served_live["hits"] == live_before
    assert (used["name"], used["snapshot"]) == ("retrain", "before")
    assert memo_etags(in_namespace)[:1] == [old] and new not in memo_etags(in_namespace)
    assert in_namespace[0]["key"] == "memo.pdf", "the snapshot-time memo is the best hit for its own words"
    assert served_namespace["index"] == "retrain" and served_namespace["hits"] == in_namespace
    assert shown["active"]["name"] == "retrain"
    assert [(n["name"], n["ready"], n["active"]) for n in shown["namespaces"]] == [("retrain", True, True)]
    assert table.exit_code == 0 and "namespace retrain" in table.output
    assert back["name"] == "live"
    assert live_after == live_before
    assert served_after["index"] == "live" and served_after["hits"] == live_before
