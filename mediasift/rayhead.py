"""A local Ray head for the embedded stack (`MEDIASIFT_RAY=local` with `mediasift up`).

It outlives every Dagster run, so the named extraction actors each run connects to keep their models
loaded between runs. Every listener binds 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from mediasift.processes import LOOPBACK, accepts, free_port, start_group, stop_group, wait_until

CLIENT_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token"}
"""For the head and every process that joins it: loopback listeners, and Ray's token auth (the token is
generated once in ~/.ray/auth_token and read by both sides)."""


class LocalRayHead:
    def __init__(self, log_dir: Path, num_cpus: int | None = None):
        self.log_dir = log_dir
        self.num_cpus = num_cpus or os.cpu_count() or 2
        self.process: subprocess.Popen | None = None
        self.address = ""

    def start(self, timeout: float = 90.0) -> LocalRayHead:
        port = free_port()
        self.address = f"{LOOPBACK}:{port}"
        argv = [
            str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", f"--node-ip-address={LOOPBACK}",
            f"--port={port}", f"--num-cpus={self.num_cpus}", "--include-dashboard=false", "--disable-usage-stats",
            f"--temp-dir={tempfile.mkdtemp(prefix='msray-', dir='/tmp')}",
        ]
        env = {**os.environ, **CLIENT_ENV}
        self.process = start_group(argv, cwd=self.log_dir, log_path=self.log_dir / "ray.log", env=env)
        wait_until(lambda: accepts(port), timeout=timeout, what=f"Ray head on {self.address}",
                   process=self.process, interval=0.5)
        return self

    def stop(self) -> None:
        stop_group(self.process, timeout=30)
        self.process = None
