"""A local Ray head for the embedded stack (`MEDIASIFT_RAY=local` with `mediasift up`).

It outlives every Dagster run, so the named extraction actors each run connects to keep their models
loaded between runs. Every listener binds 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Literal

from mediasift.local.processes import LOOPBACK, accepts, free_port, start_group, stop_group, wait_until

CLIENT_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token"}
"""For the head and every process that joins it: loopback listeners, and Ray's token auth (the token is
generated once in ~/.ray/auth_token and read by both sides)."""


RAY_CLI = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
           "from ray._private.authentication.authentication_token_setup import ensure_token_if_auth_enabled; "
           "ensure_token_if_auth_enabled(); "
           "from ray.scripts.scripts import main; sys.argv[0] = 'ray'; sys.exit(main())")
"""`ray` itself, with Ctrl-C's handler in place even when started from a shell that ignores SIGINT (as
background jobs of a non-interactive shell do): `stop` relies on it. It makes the token first where there is
none yet, as `ray.init()` does for a new local cluster (`ray start` only refuses: on a fresh machine the
head would not start)."""


class LocalRayHead:
    def __init__(self, log_dir: Path, num_cpus: int | None = None):
        self.log_dir = log_dir
        self.num_cpus = num_cpus or os.cpu_count() or 2
        self.process: subprocess.Popen | None = None
        self.address = ""
        self.temp_dir: Path | None = None
        self.stopped_by: Literal["SIGINT", "SIGTERM", "already exited"] | None = None
        """How the last `stop` ended the head: "SIGINT" (the clean path), "SIGTERM" (SIGINT went unheeded
        for 15 s, so the group was terminated, and killed if still there 15 s later), "already exited" (it had
        ended before `stop`); None before any `stop`."""

    def start(self, timeout: float = 90.0) -> LocalRayHead:
        port = free_port()
        self.address = f"{LOOPBACK}:{port}"
        self.temp_dir = Path(tempfile.mkdtemp(prefix="msray-", dir="/tmp"))
        argv = [
            sys.executable, "-c", RAY_CLI, "start", "--head", "--block", f"--node-ip-address={LOOPBACK}",
            f"--port={port}", f"--num-cpus={self.num_cpus}", "--include-dashboard=false", "--disable-usage-stats",
            f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
            f"--temp-dir={self.temp_dir}",
        ]
        env = {**os.environ, **CLIENT_ENV}
        self.process = start_group(argv, cwd=self.log_dir, log_path=self.log_dir / "ray.log", env=env)
        wait_until(lambda: accepts(port), timeout=timeout, what=f"Ray head on {self.address}",
                   process=self.process, interval=0.5)
        return self

    def stop(self) -> None:
        """SIGINT first: on it `ray start --block` stops every Ray process it started, actors included (they
        sit in process groups of their own), in about a second; on SIGTERM it takes 30 s. `stopped_by` says
        which path it took."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
                self.stopped_by = "SIGINT"
            except subprocess.TimeoutExpired:
                stop_group(self.process, timeout=15)
                self.stopped_by = "SIGTERM"
        elif self.process:
            self.stopped_by = "already exited"
        self.process = None
        if self.temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
