import json

from typer.testing import CliRunner

from mediasift.cli import app


def test_status_json_has_the_counts_depth_endpoints_and_untrained_visual_flag(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIASIFT_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    for name in ("pending", "running", "done", "failed", "dlq", "superseded", "deleted", "inbox_depth"):
        assert report[name] == 0
    assert report["visual"]["untrained"] is True
    assert report["endpoints"]["inbox"].startswith("sqlite:///")


def test_help_lists_every_command():
    result = CliRunner().invoke(app, ["--help"])
    for command in ("up", "demo", "ingest", "search", "status", "objects", "reconcile", "receiver"):
        assert command in result.output


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
