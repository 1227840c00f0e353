"""A new user's first minutes, scripted: `mediasift up` in one shell, `ingest` in another as soon as
`status` reports the stack. The object must end done (no request may go anywhere but the stack)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mediasift.local.processes import start_group, stop_group, wait_until
from mediasift.local.samples import photo

CLI = str(Path(sys.executable).parent / "mediasift")


def cli(*args: str, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=timeout)


def stack_state(env: dict) -> str | None:
    answered = cli("status", "--json", env=env)
    return json.loads(answered.stdout)["stack"] if answered.returncode == 0 else None


@pytest.mark.slow
def test_ingest_right_after_up_waits_for_the_stack_and_the_object_ends_done(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDIASIFT_", "AWS_"))}
    env["MEDIASIFT_HOME"] = str(tmp_path / "home")
    upload = tmp_path / "chelsea the cat.png"
    photo("chelsea").save(upload)
    up = start_group([CLI, "up"], cwd=tmp_path, log_path=tmp_path / "up.log", env=env)
    try:
        wait_until(lambda: stack_state(env) in ("starting", "ready"), timeout=120, what="status names the stack",
                   process=up, interval=0.1)
        ingested = cli("ingest", str(upload), "--wait", "--json", env=env, timeout=600)
        assert ingested.returncode == 0, ingested.stderr + (tmp_path / "up.log").read_text()[-3000:]
        assert [row["state"] for row in json.loads(ingested.stdout)] == ["done"]
        assert stack_state(env) == "ready"
    finally:
        stop_group(up, timeout=60)
    assert stack_state(env) == "down"
