"""The stack's own Ray head (`MEDIASIFT_RAY=local` with `mediasift up`): runs join it, its actors outlive
each run, and it leaves nothing behind when it stops."""

import subprocess
import time

import pytest

from mediasift.extraction.compute import RayCompute
from mediasift.local.processes import alive
from mediasift.local.rayhead import LocalRayHead
from tests.helpers import assert_ray_listens_on_loopback_only

pytestmark = pytest.mark.slow


def test_runs_joining_the_head_reuse_its_actors_and_stop_leaves_nothing(stack, tmp_path):
    head = LocalRayHead(tmp_path, num_cpus=1).start()
    try:
        first_run = RayCompute(stack.settings, address=head.address, actors=1)
        (actor,) = first_run.pids()
        first_run.close()
        assert_ray_listens_on_loopback_only()
        second_run = RayCompute(stack.settings, address=head.address, actors=1)
        assert second_run.pids() == [actor], "a later run got a fresh actor: its models would load again"
        second_run.close()
    finally:
        head.stop()
    assert head.stopped_by == "SIGINT", "the head ignored SIGINT and took its SIGTERM path (30 s)"
    assert _gone(actor), "the detached actor outlived its head"
    leftovers = [line for line in subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True,
                                                 check=True).stdout.splitlines() if str(head.temp_dir) in line]
    assert leftovers == []
    assert not head.temp_dir.exists(), "the head's temp dir outlived it"


def _gone(pid: int, within: float = 5.0) -> bool:
    """True once `pid` no longer exists (an orphan may linger a moment before it is reaped)."""
    deadline = time.monotonic() + within
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_the_head_starts_on_a_machine_with_no_ray_token_yet(tmp_path, monkeypatch):
    """`ray start` refuses to start a token-auth head without a token; a fresh machine has none."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    head = LocalRayHead(tmp_path, num_cpus=1).start()
    try:
        assert (tmp_path / "home" / ".ray" / "auth_token").stat().st_size > 0
    finally:
        head.stop()
    assert head.stopped_by == "SIGINT"
