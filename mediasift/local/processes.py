"""Starting and stopping the helper servers (SeaweedFS, Dagster, Ray) as process groups on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """Distinct free ports; ports p and p+10000 both free (SeaweedFS puts gRPC at port+10000)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port(host)
        if port + 10000 < 65535 and port not in ports and _is_free(port + 10000, host):
            ports.append(port)
    return ports


def _is_free(port: int, host: str) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def accepts(port: int, host: str = LOOPBACK) -> bool:
    """Whether a server listens on the port yet."""
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True


def start_group(argv: Sequence[str], *, cwd: Path, log_path: Path, env: dict[str, str] | None = None
                ) -> subprocess.Popen:
    """Start a command as the leader of its own process group, output to a log file. `env` is the
    complete environment (default: this process's)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        return subprocess.Popen(list(argv), cwd=cwd, stdout=log_file, stderr=subprocess.STDOUT,
                                env=os.environ.copy() if env is None else env, start_new_session=True)


def stop_group(process: subprocess.Popen | None, timeout: float = 15.0) -> None:
    """SIGTERM the whole group, then SIGKILL what is left after `timeout`."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        process.wait(timeout=5)


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.2,
               process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:  # a server that is still starting fails in many ways
            pass
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: process exited with code {process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready after {timeout:.0f}s")
        time.sleep(interval)
