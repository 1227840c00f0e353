"""Webhook authentication: two tokens during a rotation, none after it, every accepted one compared in constant
time; a receiver without credentials refuses every POST, and `mediasift receiver` will not start without them."""

from __future__ import annotations

import hmac

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient
from typer.testing import CliRunner

from mediasift.cli import app as cli
from mediasift.config import SECRET_FIELDS, Settings
from mediasift.intake import auth
from mediasift.intake.auth import Authenticator
from mediasift.intake.receiver import create_app
from resources.settings import SettingsResource
from tests.conftest import payload

NEW, OLD = "new-token-after-rotation", "old-token-before-rotation"


def posts(settings: Settings, *authorizations: str | None) -> tuple[list[int], int]:
    """The status each Authorization header gets on a Tigris POST, and how many events were written."""
    app = create_app(settings)
    with TestClient(app) as client:
        statuses = [client.post("/webhooks/tigris", content=payload("tigris-blog-flat.json"),
                                headers={"Authorization": a} if a else {}).status_code for a in authorizations]
    return statuses, len(app.state.inbox.events_after(0, 10))


def test_both_tokens_are_accepted_during_a_rotation_and_the_old_one_refused_after(tmp_path):
    rotating = Settings(home=tmp_path / "during", webhook_token=NEW, webhook_token_previous=OLD)
    assert posts(rotating, f"Bearer {NEW}", f"Bearer {OLD}", "Bearer other", f"Bearer {OLD}{NEW}") == (
        [200, 200, 401, 401], 1)
    rotated = Settings(home=tmp_path / "after", webhook_token=NEW)
    assert posts(rotated, f"Bearer {OLD}", f"Bearer {NEW}") == ([401, 200], 1)


def test_every_accepted_token_is_compared_whichever_matches(monkeypatch):
    """No early exit: the first token matching takes as many constant-time comparisons as the second."""
    compared, compare = [], hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return compare(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", recording)
    authenticator = Authenticator(Settings(webhook_token=NEW, webhook_token_previous=OLD))
    for offered in (NEW, OLD, "neither"):
        compared.clear()
        authenticator.allows(f"Bearer {offered}")
        assert compared == [NEW.encode(), OLD.encode()]


def test_receiver_without_credentials_refuses_every_post(tmp_path, caplog):
    assert posts(Settings(home=tmp_path), None, "Bearer ", "Basic Og==") == ([401, 401, 401], 0)
    assert "receiver_auth_unconfigured" in caplog.text


@pytest.mark.parametrize(("env", "says"), [
    ({}, "MEDIASIFT_WEBHOOK_TOKEN"),
    ({"MEDIASIFT_WEBHOOK_TOKEN_PREVIOUS": OLD}, "MEDIASIFT_WEBHOOK_TOKEN_PREVIOUS is set without"),
    ({"MEDIASIFT_WEBHOOK_BASIC_USER": "tigris"}, "must be set together"),
], ids=["nothing", "previous-only", "basic-user-only"])
def test_receiver_command_refuses_to_start_without_credentials(tmp_path, monkeypatch, env, says):
    started = []
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: started.append(a))
    for name in ("MEDIASIFT_WEBHOOK_TOKEN", "MEDIASIFT_WEBHOOK_TOKEN_PREVIOUS", "MEDIASIFT_WEBHOOK_BASIC_USER",
                 "MEDIASIFT_WEBHOOK_BASIC_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MEDIASIFT_HOME", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, ["receiver"])
    said = " ".join(result.output.split())
    assert result.exit_code == 1
    assert said.startswith("error: the receiver will not start: ") and says in said
    assert OLD not in said
    assert started == []


def test_receiver_command_starts_with_a_token(tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: started.append(kwargs))
    monkeypatch.setenv("MEDIASIFT_HOME", str(tmp_path))
    monkeypatch.setenv("MEDIASIFT_WEBHOOK_TOKEN", NEW)
    result = CliRunner().invoke(cli, ["receiver", "--port", "18750"])
    assert result.exit_code == 0, result.output
    assert started == [{"host": "127.0.0.1", "port": 18750, "access_log": False}]


def test_previous_token_is_a_secret_kept_out_of_resource_config():
    settings = Settings(webhook_token=SecretStr(NEW), webhook_token_previous=SecretStr(OLD))
    assert "webhook_token_previous" in SECRET_FIELDS
    assert OLD not in repr(settings) and OLD not in str(SettingsResource.of(settings).values)


def test_receiver_command_refuses_the_dagster_processes_metrics_directory(tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: started.append(a))
    monkeypatch.setenv("MEDIASIFT_HOME", str(tmp_path))
    monkeypatch.setenv("MEDIASIFT_WEBHOOK_TOKEN", "a-token-of-enough-length-0123456789")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "missing"))
    result = CliRunner().invoke(cli, ["receiver"])
    said = " ".join(result.output.split())
    assert result.exit_code == 1
    assert said.startswith("error: the receiver will not start: PROMETHEUS_MULTIPROC_DIR is set")
    assert started == []
