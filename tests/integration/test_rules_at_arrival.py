"""The taxonomy's rules in each object's own run, on the real pipeline (SeaweedFS and its webhook, the real
receiver, Dagster in-process, spaCy and faster-whisper): a PDF naming a person and a recording saying a
phrase are flagged in the run that indexes them, the check on that partition warns, and each alert reaches a
real HTTP endpoint exactly once, even when the notification is delivered again and the partition is
re-materialised."""

import json
from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from mediasift.analysis import views
from mediasift.cli import app
from mediasift.local.samples import SPEECH, write_text_pdf
from mediasift.store.s3 import ObjectStore
from tests.helpers import RecordingServer, pipeline_resources, run, tick, wait_for_events

TAXONOMY = """
version: 1
labels:
  - {name: ports, prompts: [a harbour]}
rules:
  - name: names-ada
    when: {entity: {label: PERSON, text: Ada Lovelace}}
  - name: says-lisbon
    when: {phrase: Lisbon, layers: [transcript]}
"""


@pytest.fixture
def alerts():
    with RecordingServer() as server:
        yield server


def pdf(tmp_path: Path, name: str, text: str) -> bytes:
    path = tmp_path / name
    write_text_pdf(path, {1: text})
    return path.read_bytes()


def test_rules_flag_in_the_objects_own_run_and_alert_once(stack, bucket, stack_inbox, webhook, alerts, tmp_path,
                                                           monkeypatch):
    taxonomy = tmp_path / "taxonomy.yaml"
    taxonomy.write_text(TAXONOMY)
    resources = pipeline_resources(stack.settings, bucket, tmp_path, taxonomy=taxonomy,
                                   alert_webhook_url=alerts.url)
    instance = dg.DagsterInstance.ephemeral()
    client = ObjectStore.from_settings(stack.settings).client
    objects = {
        "contracts/signed by ada.pdf": pdf(tmp_path, "a.pdf", "The contract was signed by Ada Lovelace in London."),
        "contracts/unsigned.pdf": pdf(tmp_path, "b.pdf", "The board approved the wind turbine budget."),
        "calls/update.ogg": SPEECH.read_bytes(),
    }
    for key, body in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)
    events = wait_for_events(stack_inbox, bucket, len(objects))
    sensed = tick(instance, resources, str(min(e.seq for e in events) - 1))
    results = [run(instance, resources, request) for request in sensed.run_requests]
    assert len(results) == 3 and all(r.success for r in results)

    monkeypatch.setenv("MEDIASIFT_HOME", str(stack.home))
    monkeypatch.setenv("MEDIASIFT_DERIVED_DIR", str(tmp_path / "derived"))
    raised = {f.flag.ref.key: f.flag for f in views.arrival_flags(views.load_objects(tmp_path / "derived"))}
    assert set(raised) == {"contracts/signed by ada.pdf", "calls/update.ogg"}
    assert raised["contracts/signed by ada.pdf"].reason == "rule:names-ada: PERSON 'Ada Lovelace' on page 1"
    assert raised["calls/update.ogg"].reason.startswith("rule:says-lisbon: 'Lisbon' in transcript at ")

    checks = {e.partition: e for r in results for e in r.get_asset_check_evaluations()
              if e.check_name == "no_rule_flags"}
    version_of = {e.key: e.version_hash for e in events}
    assert {key: checks[version_of[key]].passed for key in objects} == {
        "contracts/signed by ada.pdf": False, "contracts/unsigned.pdf": True, "calls/update.ogg": False}
    assert checks[version_of["calls/update.ogg"]].severity is dg.AssetCheckSeverity.WARN

    assert sorted(r["body"]["rule"] for r in alerts.requests) == ["names-ada", "says-lisbon"]
    assert {r["headers"]["Idempotency-Key"] for r in alerts.requests} == {f.id for f in raised.values()}
    ada = next(r["body"] for r in alerts.requests if r["body"]["rule"] == "names-ada")
    assert (ada["object"]["key"], ada["object"]["etag"]) == ("contracts/signed by ada.pdf",
                                                              raised["contracts/signed by ada.pdf"].ref.etag)

    again = {"events": [{"eventVersion": "1", "eventSource": "tigris", "eventName": "OBJECT_CREATED_PUT",
                         "eventTime": "2026-12-01T12:00:00.000Z", "bucket": bucket,
                         "object": {"key": "contracts/signed by ada.pdf", "size": 1,
                                    "eTag": raised["contracts/signed by ada.pdf"].ref.etag}}]}
    assert webhook("tigris", again).status_code == 200
    assert webhook("tigris", again).status_code == 200
    assert not tick(instance, resources, sensed.cursor).run_requests, "a redelivered notification is absorbed"
    rerun = run(instance, resources, dg.RunRequest(partition_key=version_of["contracts/signed by ada.pdf"]))
    assert rerun.success
    assert len(alerts.requests) == 2, "neither a redelivery nor a re-materialisation sends an alert again"

    shown = CliRunner().invoke(app, ["flags", "--json"])
    assert shown.exit_code == 0, shown.output
    assert sorted((f["key"], f["rule"]) for f in json.loads(shown.output)["flags"]) == [
        ("calls/update.ogg", "says-lisbon"), ("contracts/signed by ada.pdf", "names-ada")]


def test_a_batch_run_warns_on_exactly_its_flagged_versions(stack, bucket, stack_inbox, tmp_path):
    taxonomy = tmp_path / "taxonomy.yaml"
    taxonomy.write_text(TAXONOMY)
    resources = pipeline_resources(stack.settings, bucket, tmp_path, taxonomy=taxonomy)
    instance = dg.DagsterInstance.ephemeral()
    client = ObjectStore.from_settings(stack.settings).client
    client.put_object(Bucket=bucket, Key="a.pdf", Body=pdf(tmp_path, "a.pdf", "Signed by Ada Lovelace."))
    client.put_object(Bucket=bucket, Key="b.pdf", Body=pdf(tmp_path, "b.pdf", "Signed by nobody at all."))
    events = wait_for_events(stack_inbox, bucket, 2)
    [request] = tick(instance, resources, str(min(e.seq for e in events) - 1), batch=2).run_requests
    result = run(instance, resources, request)
    verdicts = {e.partition: e.passed for e in result.get_asset_check_evaluations() if e.check_name == "no_rule_flags"}
    version_of = {e.key: e.version_hash for e in events}
    assert verdicts == {version_of["a.pdf"]: False, version_of["b.pdf"]: True, None: False}, (
        "one verdict per version on its partition, and the run's own")
