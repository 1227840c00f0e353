"""No secret leaves its place: a full ingest on the real stack (SeaweedFS and its webhook, the receiver, Dagster
in-process on a test instance, the real layers, a rule alert sent with its token), with webhook requests that
succeed, fail and use the previous token of a rotation, and then every place a secret could leak to is read
whole: every log record at DEBUG, everything written to stdout/stderr (this process and the stack's process
logs), the receiver's answers and /metrics, `mediasift status|objects show|dlq list --json`, every event of
every Dagster run with its metadata and messages and the run config, and every byte of every file the stack
home, the Dagster instance and the feature tables/index hold, except the three 0600 files that store the
stack's keys. None holds any S3 key, webhook token (current or previous), Basic password or alert token."""

from __future__ import annotations

import base64
import io
import json
import logging
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import httpx
import pytest
from PIL import Image
from typer.testing import CliRunner

from mediasift.cli import app
from mediasift.config import Settings
from mediasift.local.samples import photo, write_text_pdf
from mediasift.local.stack import DagsterMode, Stack
from mediasift.store.s3 import ObjectStore
from tests.helpers import RecordingServer, pipeline_resources, run, tick, wait_for_events

PREVIOUS_TOKEN = "prev-" + uuid.uuid4().hex
BASIC_USER, BASIC_PASSWORD = "tigris", "basic-" + uuid.uuid4().hex
ALERT_TOKEN = "alert-" + uuid.uuid4().hex
SECRET_STORES = ("credentials.json", "seaweedfs/s3.json", "seaweedfs/notification.toml")
"""Where the stack keeps its keys at rest (mode 0600): the only files allowed to hold them."""
TAXONOMY = """
version: 1
labels:
  - {name: contracts, prompts: [a signed contract]}
rules:
  - name: names-ada
    when: {entity: {label: PERSON, text: Ada Lovelace}}
"""


@pytest.fixture(scope="module")
def secret_stack(tmp_path_factory) -> Iterator[Stack]:
    """A stack of its own, so that it runs with every kind of secret configured: its generated S3 keys and
    webhook token, a previous token (mid-rotation), Basic credentials and an alert token."""
    settings = Settings(home=tmp_path_factory.mktemp("secret-home"), webhook_token_previous=PREVIOUS_TOKEN,
                        webhook_basic_user=BASIC_USER, webhook_basic_password=BASIC_PASSWORD,
                        alert_webhook_token=ALERT_TOKEN)
    with Stack(settings, DagsterMode.NONE) as running, pytest.MonkeyPatch.context() as env:
        env.setenv("MEDIASIFT_S3_ACCESS_KEY", running.settings.s3_access_key.get_secret_value())
        env.setenv("MEDIASIFT_S3_SECRET_KEY", running.settings.s3_secret_key.get_secret_value())
        env.setenv("MEDIASIFT_ALERT_WEBHOOK_TOKEN", ALERT_TOKEN)
        yield running


def secrets_of(stack: Stack) -> dict[str, str]:
    s = stack.settings
    basic = f"{BASIC_USER}:{BASIC_PASSWORD}"
    return {"s3 access key": s.s3_access_key.get_secret_value(), "s3 secret key": s.s3_secret_key.get_secret_value(),
            "webhook token": s.webhook_token.get_secret_value(), "previous webhook token": PREVIOUS_TOKEN,
            "basic password": BASIC_PASSWORD, "basic credentials (base64)": base64.b64encode(basic.encode()).decode(),
            "alert token": ALERT_TOKEN}


def leaks(secrets: dict[str, str], text: str | bytes) -> list[str]:
    data = text if isinstance(text, bytes) else text.encode()
    return [name for name, value in secrets.items() if value.encode() in data]


def every_file(root: Path, skip: tuple[Path, ...] = ()) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_socket() and path not in skip:
            yield path


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_a_full_ingest_leaves_no_secret_in_logs_outputs_metrics_or_the_event_log(secret_stack, tmp_path, caplog,
                                                                                 capfd, monkeypatch):
    caplog.set_level(logging.DEBUG)
    stack, secrets = secret_stack, secrets_of(secret_stack)
    bucket = f"t-{uuid.uuid4().hex[:10]}"
    storage = ObjectStore.from_settings(stack.settings)
    storage.ensure_bucket(bucket)
    inbox = stack.receiver.server.config.app.state.inbox
    taxonomy = tmp_path / "taxonomy.yaml"
    taxonomy.write_text(TAXONOMY)
    contract = tmp_path / "contract.pdf"
    write_text_pdf(contract, {1: "The contract was signed by Ada Lovelace in London."})
    objects = {"contracts/ada.pdf": contract.read_bytes(), "photos/coffee.png": png(photo("coffee")),
               "photos/broken.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "data/blob.xyz": bytes(range(256))}
    answers = []

    with RecordingServer() as alerts, dg.instance_for_test() as instance:
        resources = pipeline_resources(stack.settings, bucket, tmp_path, taxonomy=taxonomy,
                                       alert_webhook_url=alerts.url, max_attempts=1)
        cursor = str(inbox.last_seq())
        for key, body in objects.items():
            storage.client.put_object(Bucket=bucket, Key=key, Body=body)
        wait_for_events(inbox, bucket, len(objects))
        results = [run(instance, resources, request, raise_on_error=False)
                   for request in tick(instance, resources, cursor).run_requests]
        assert len(results) == len(objects)
        assert not all(r.success for r in results), "the broken PNG's run fails: the error path is covered too"
        assert [r["body"]["rule"] for r in alerts.requests] == ["names-ada"]
        assert alerts.requests[0]["headers"]["Authorization"] == f"Bearer {ALERT_TOKEN}", "the token was in use"

        flat = json.dumps({"eventType": "OBJECT_CREATED_PUT", "bucket": bucket, "key": "_mediasift/x", "etag": "1"})
        for authorization in (f"Bearer {PREVIOUS_TOKEN}", f"Basic {secrets['basic credentials (base64)']}",
                              f"Bearer {PREVIOUS_TOKEN}x", None):
            response = httpx.post(f"{stack.receiver.url}/webhooks/tigris", content=flat, timeout=10,
                                  headers={"Authorization": authorization} if authorization else {})
            answers.append(f"{response.status_code} {response.headers} {response.text}")
        assert [a.split()[0] for a in answers] == ["200", "200", "401", "401"]
        answers.append(httpx.post(f"{stack.receiver.url}/webhooks/s3", content=b"{bad", timeout=10, headers={
            "Authorization": f"Bearer {secrets['webhook token']}"}).text)
        answers.append(httpx.get(f"{stack.receiver.url}/metrics", timeout=10).text)

        monkeypatch.setenv("MEDIASIFT_HOME", str(stack.home))
        monkeypatch.setenv("MEDIASIFT_DERIVED_DIR", str(tmp_path / "derived"))
        commands = [["status", "--json"], ["objects", "show", f"s3://{bucket}/photos/broken.png", "--json"],
                    ["objects", "show", f"s3://{bucket}/contracts/ada.pdf", "--json"], ["dlq", "list", "--json"]]
        for command in commands:
            shown = CliRunner().invoke(app, command)
            assert shown.exit_code == 0, shown.output
            answers.append(shown.output)

        event_log = []
        for record in instance.get_run_records():
            run_ = record.dagster_run
            event_log.append(f"{run_.run_config} {run_.tags}")
            event_log += [f"{entry!r} {entry.message}" for entry in instance.all_logs(run_.run_id)]
        assert any("photos/broken.png" in entry for entry in event_log), "the failure is in the event log"
        instance_files = list(every_file(Path(instance.root_directory)))

        found = {f"{name} in {path}": leaks(secrets, path.read_bytes()) for name, path in
                 [("Dagster instance file", p) for p in instance_files] +
                 [("stack file", p) for p in every_file(stack.home, tuple(stack.home / s for s in SECRET_STORES))] +
                 [("feature tables / index file", p) for p in every_file(tmp_path)]}
    out, err = capfd.readouterr()
    found |= {"log records (DEBUG)": leaks(secrets, caplog.text + "\n".join(str(r.__dict__) for r in caplog.records)),
              "stdout": leaks(secrets, out), "stderr": leaks(secrets, err),
              "receiver answers, /metrics and CLI output": leaks(secrets, "\n".join(answers)),
              "Dagster event log": leaks(secrets, "\n".join(event_log))}
    assert {place: names for place, names in found.items() if names} == {}
    assert instance_files and caplog.records, "the places searched were not empty"
    for name in SECRET_STORES:
        assert stat.S_IMODE((stack.home / name).stat().st_mode) == 0o600, name
