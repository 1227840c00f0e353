import json
import re

from typer.testing import CliRunner

from mediasift.cli import app
from mediasift.config import Settings
from mediasift.inbox import Inbox, State
from mediasift.intake.events import EventKind, NotificationEvent, Source


def test_status_json_has_the_counts_depth_endpoints_and_the_visual_model(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIASIFT_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    for name in ("pending", "running", "done", "failed", "dlq", "superseded", "deleted", "inbox_depth"):
        assert report[name] == 0
    assert report["visual"] == {"model": "efficientnet-lite0@imagenet", "clip": None, "weights": "packaged",
                                "trained": True}
    assert report["stack"] == "down"
    assert report["endpoints"]["inbox"].startswith("sqlite:///")
    assert not (tmp_path / "inbox.db").exists(), "a read-only command creates nothing"


def test_help_lists_every_command():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    commands_box = result.output.split("Commands")[1]
    listed = set(re.findall(r"^│ ([a-z]+) ", commands_box, flags=re.MULTILINE))
    assert listed == {"up", "demo", "ingest", "search", "status", "objects", "reconcile", "receiver", "dlq",
                      "duplicates", "clusters", "anomalies", "flags", "classify", "snapshot", "replay",
                      "diff", "index"}


def test_bad_uri_and_unknown_object_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIASIFT_HOME", str(tmp_path))
    bad = CliRunner().invoke(app, ["objects", "show", "media/key"])
    assert bad.exit_code == 1 and "s3://BUCKET/KEY" in bad.output
    unknown = CliRunner().invoke(app, ["objects", "show", "s3://media/nope.mp4"])
    assert unknown.exit_code == 1 and "no version" in unknown.output


def test_ingest_of_a_missing_path_fails_before_uploading(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIASIFT_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["ingest", str(tmp_path / "missing.mp4")])
    assert result.exit_code == 1 and "no such file" in result.output


def test_dlq_list_retry_and_purge(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIASIFT_HOME", str(tmp_path))
    inbox = Inbox(Settings.load().inbox_url)
    events = [NotificationEvent(Source.S3, EventKind.CREATED, "media", key, "e1") for key in ("a b.mp4", "c.pdf")]
    inbox.append(events)
    for e in events:
        inbox.mark_failed(e.version_hash, "ObjectReadError: 403", dead_letter=True, attempt=3)
    cli = CliRunner()

    listed = json.loads(cli.invoke(app, ["dlq", "list", "--json"]).output)
    assert [(v["key"], v["attempts"], v["last_error"]) for v in listed] == [
        ("a b.mp4", 3, "ObjectReadError: 403"), ("c.pdf", 3, "ObjectReadError: 403")]
    retried = cli.invoke(app, ["dlq", "retry", "s3://media/a b.mp4", "--json"])
    assert retried.exit_code == 0, retried.output
    assert [v["partition_key"] for v in json.loads(retried.output)] == [events[0].version_hash]
    assert inbox.version(events[0].version_hash).state is State.PENDING
    assert inbox.events_after(2, 10)[0].source == "redrive"
    assert cli.invoke(app, ["dlq", "purge", "--all"], input="n\n").exit_code == 1
    assert inbox.counts()["dlq"] == 1
    purged = cli.invoke(app, ["dlq", "purge", events[1].version_hash, "--yes", "--json"])
    assert json.loads(purged.output) == {"purged": 1}
    assert json.loads(cli.invoke(app, ["dlq", "list", "--json"]).output) == []


def test_dlq_commands_name_what_is_wrong(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIASIFT_HOME", str(tmp_path))
    nothing = CliRunner().invoke(app, ["dlq", "retry"])
    assert nothing.exit_code == 1 and "--all" in nothing.output
    unknown = CliRunner().invoke(app, ["dlq", "retry", "s3://media/never.mp4"])
    assert unknown.exit_code == 1 and "no version in the dead-letter queue" in unknown.output
    bad = CliRunner().invoke(app, ["dlq", "purge", "media/key", "--yes"])
    assert bad.exit_code == 1 and "s3://BUCKET/KEY" in bad.output
