"""No command talks to a store it was not pointed at: the embedded stack's keys go to its endpoint only
once the stack says it is ready, and without a stack or an endpoint a command fails before any request."""

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mediasift.config import CREDENTIALS_FILE, STACK_FILE, Settings, StackState
from mediasift.errors import StoreNotConfigured
from mediasift.store.s3 import ObjectStore

STACK_KEYS = {"access_key": "MSSTACKKEY", "secret_key": "stack-secret", "webhook_token": "tok"}


@pytest.fixture
def home(tmp_path, monkeypatch):
    for name in ("MEDIASIFT_S3_ENDPOINT_URL", "MEDIASIFT_S3_ACCESS_KEY", "MEDIASIFT_S3_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / CREDENTIALS_FILE).write_text(json.dumps(STACK_KEYS))
    return tmp_path


def write_stack(home, state: str, pid: int = os.getpid()) -> None:
    (home / STACK_FILE).write_text(json.dumps({"state": state, "pid": pid, "s3_endpoint_url": "http://127.0.0.1:1"}))


def test_stack_keys_without_a_running_stack_are_never_used(home):
    settings = Settings.load(home=home)
    assert settings.stack_info()["state"] == StackState.DOWN
    assert settings.s3_endpoint_url is None and settings.s3_access_key is None
    with pytest.raises(StoreNotConfigured, match="mediasift up"):
        ObjectStore.from_settings(settings)


def test_a_stack_file_left_by_a_dead_process_means_down(home):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    write_stack(home, "ready", pid=int(dead.stdout))
    settings = Settings.load(home=home)
    assert settings.stack_info()["state"] == StackState.DOWN and settings.s3_endpoint_url is None


def test_a_starting_stack_is_reported_without_waiting_and_waited_for_otherwise(home, capsys):
    write_stack(home, "starting")
    status = Settings.load(wait_for_stack=0, home=home)
    assert status.stack_info()["state"] == StackState.STARTING and status.s3_endpoint_url is None
    ready = threading.Timer(0.5, write_stack, args=(home, "ready"))
    ready.start()
    settings = Settings.load(wait_for_stack=60, home=home)
    ready.join()
    assert settings.s3_endpoint_url == "http://127.0.0.1:1"
    assert settings.s3_access_key.get_secret_value() == STACK_KEYS["access_key"]
    assert "waiting for the stack" in capsys.readouterr().err


def test_ingest_without_a_stack_fails_clearly_and_sends_nothing(home, tmp_path):
    """AWS keys in the environment and a proxy that counts connections: boto3 signing for AWS S3 would
    go through the proxy; nothing may reach it."""
    upload = tmp_path / "clip.mp4"
    upload.write_bytes(b"not really a video")
    with socket.socket() as proxy:
        proxy.bind(("127.0.0.1", 0))
        proxy.listen()
        proxy.settimeout(0.5)
        address = f"http://127.0.0.1:{proxy.getsockname()[1]}"
        env = {**os.environ, "MEDIASIFT_HOME": str(home), "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
               "AWS_SECRET_ACCESS_KEY": "example", "HTTPS_PROXY": address, "HTTP_PROXY": address}
        result = subprocess.run([str(Path(sys.executable).parent / "mediasift"), "ingest", str(upload)], env=env,
                                capture_output=True, text=True, timeout=120)
        with pytest.raises(TimeoutError):
            proxy.accept()
    assert result.returncode == 1
    assert "no S3 endpoint" in result.stderr and "mediasift up" in result.stderr
    assert "stack-secret" not in result.stderr + result.stdout
