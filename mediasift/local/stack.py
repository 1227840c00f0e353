"""The whole local stack in one object: receiver, SeaweedFS with its webhook, and Dagster.

Start order matters: the receiver first (SeaweedFS drops events it cannot deliver), then the store,
then Dagster. Everything binds to 127.0.0.1; stop() ends every process that start() began.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from enum import StrEnum
from importlib.resources import files
from pathlib import Path

import yaml
from pydantic import SecretStr

from mediasift.config import SECRET_FIELDS, STACK_FILE, Settings, StackState
from mediasift.intake.receiver import ReceiverServer, create_app
from mediasift.local.processes import LOOPBACK, accepts, free_port, start_group, stop_group, wait_until
from mediasift.local.rayhead import CLIENT_ENV as RAY_CLIENT_ENV
from mediasift.local.rayhead import LocalRayHead
from mediasift.local.seaweedfs import SeaweedStack, ensure_credentials
from mediasift.metrics import MULTIPROC_ENV, fresh_metrics_dir, metrics_dir
from mediasift.store.s3 import ObjectStore

INSTANCE_YAML = files("dagster_project") / "dagster.yaml"
"""The instance settings every deployment uses (the one-run-per-version limit among them)."""
CODE_LOCATION = "dagster_project.definitions"
WARM_CODE_SERVER = "dagster_project.code_server"


PLANNED_SUBSET_ENV = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"
"""Batch mode: a ranged run records one 'planned' event per asset instead of one per asset per partition
(with SQLite storage that was 3-4 s per 100-object run, before the run could start). Dagster's trade-off:
the partitions of a failed batch run are not marked failed; the inbox and its dead-letter queue still are."""


def tuned_sqlite_storage(dagster_home: Path) -> dict:
    """dagster.yaml's storage and compute-log entries for dagster_project/storage.py's classes, in Dagster's
    default places."""
    history = dagster_home / "history"
    places = {"run_storage": ("CheckedOnceSqliteRunStorage", history),
              "event_log_storage": ("KeptOpenSqliteEventLogStorage", history / "runs"),
              "schedule_storage": ("CheckedOnceSqliteScheduleStorage", dagster_home / "schedules"),
              "compute_logs": ("FileComputeLogManager", dagster_home / "storage")}
    return {role: {"module": "dagster_project.storage", "class": name, "config": {"base_dir": str(base_dir)}}
            for role, (name, base_dir) in places.items()}


class DagsterMode(StrEnum):
    NONE = "none"
    DAEMON = "daemon"
    DEV = "dev"


class Stack:
    tuned_sqlite_storage = True
    """Dagster's SQLite storages as dagster_project/storage.py tunes them (the event log's databases kept
    open, the run and schedule schemas checked once per process), in Dagster's default places; bench/burst.py
    turns it off for its baseline."""
    warm_run_workers = True
    """Runs forked from a forkserver that imported the code location once (dagster_project/code_server.py),
    not spawned afresh; bench/latency.py turns it off for its baseline."""

    def __init__(self, settings: Settings, dagster: DagsterMode = DagsterMode.DEV):
        self.settings = settings.model_copy()
        self.settings.home = settings.home.resolve()
        self.dagster_mode = dagster
        self.receiver: ReceiverServer | None = None
        self.store: SeaweedStack | None = None
        self.dagster: subprocess.Popen | None = None
        self.code_server: subprocess.Popen | None = None
        self.dagster_url: str | None = None
        self.ray_head: LocalRayHead | None = None

    @property
    def home(self) -> Path:
        return self.settings.home

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    def start(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self._write_stack_file(StackState.STARTING)
        creds = ensure_credentials(self.home)
        s = self.settings
        s.webhook_token = s.webhook_token or SecretStr(creds["webhook_token"])
        s.s3_access_key, s.s3_secret_key = SecretStr(creds["access_key"]), SecretStr(creds["secret_key"])
        app = create_app(s)
        self.receiver = ReceiverServer(app, LOOPBACK, free_port()).start()
        self.store = SeaweedStack(self.home, f"{self.receiver.url}/webhooks/seaweedfs").start()
        s.s3_endpoint_url = self.store.s3_endpoint_url
        ObjectStore.from_settings(s).ensure_bucket(s.bucket)
        if s.ray == "local":
            self.ray_head = LocalRayHead(self.home).start()
            s.ray = self.ray_head.address
        if self.dagster_mode is not DagsterMode.NONE:
            self._start_dagster()
        self._write_stack_file(StackState.READY)

    def child_env(self) -> dict[str, str]:
        """What a Dagster process needs to reach this stack (secrets by environment, never config)."""
        s = self.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASIFT_")}
        env.update({f"MEDIASIFT_{name.upper()}": str(value) for name, value in s.model_dump(exclude=set(
            SECRET_FIELDS)).items() if value is not None})
        env.update({
            "DAGSTER_HOME": str(self.dagster_home),
            "MEDIASIFT_DATABASE_URL": s.inbox_url,
            "MEDIASIFT_S3_ACCESS_KEY": s.s3_access_key.get_secret_value(),
            "MEDIASIFT_S3_SECRET_KEY": s.s3_secret_key.get_secret_value(),
            MULTIPROC_ENV: str(metrics_dir(self.home)),
        })
        if s.alert_webhook_token:
            env["MEDIASIFT_ALERT_WEBHOOK_TOKEN"] = s.alert_webhook_token.get_secret_value()
        if self.ray_head:
            env.update(RAY_CLIENT_ENV)
        if s.run_batch_size > 1:
            env[PLANNED_SUBSET_ENV] = "true"
        return env

    def _start_dagster(self) -> None:
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        fresh_metrics_dir(self.home)
        instance = yaml.safe_load(INSTANCE_YAML.read_text())
        instance["run_coordinator"]["config"]["max_concurrent_runs"] = self.settings.concurrent_runs
        if self.tuned_sqlite_storage:
            instance.update(tuned_sqlite_storage(self.dagster_home))
        (self.dagster_home / "dagster.yaml").write_text(yaml.safe_dump(instance, sort_keys=False))
        bin_dir = Path(sys.executable).parent
        workspace = str(self._start_code_server(bin_dir))
        if self.dagster_mode is DagsterMode.DEV:
            port = free_port()
            argv = [str(bin_dir / "dagster"), "dev", "-w", workspace, "-h", LOOPBACK, "-p", str(port)]
            self.dagster_url = f"http://{LOOPBACK}:{port}"
        else:
            argv = [str(bin_dir / "dagster-daemon"), "run", "-w", workspace]
        self.dagster = start_group(argv, cwd=self.dagster_home, log_path=self.dagster_home / "dagster.log",
                                   env=self.child_env())
        if self.dagster_url:
            wait_until(lambda: urllib.request.urlopen(f"{self.dagster_url}/server_info", timeout=2).status == 200,
                       timeout=120, what=f"Dagster UI on {self.dagster_url}", process=self.dagster, interval=0.5)

    def _start_code_server(self, bin_dir: Path) -> Path:
        """A code server that lives as long as the stack, shared by the daemon and (`dagster dev`) the UI;
        returns the workspace file that points at it. (Given `-m`, the daemon manages its own code server
        and replaces it every 60 s, and each new one imports the whole code location again: seconds of CPU
        that a burst's extraction needs.) With `warm_run_workers`, its runs fork from a warm forkserver."""
        port = free_port()
        server = ([sys.executable, "-m", WARM_CODE_SERVER] if self.warm_run_workers
                  else [str(bin_dir / "dagster"), "api", "grpc"])
        argv = [*server, "-m", CODE_LOCATION, "-h", LOOPBACK, "-p", str(port), "--location-name", CODE_LOCATION]
        self.code_server = start_group(argv, cwd=self.dagster_home, log_path=self.dagster_home / "code-server.log",
                                       env=self.child_env())
        wait_until(lambda: accepts(port), timeout=120, what=f"Dagster code server on {LOOPBACK}:{port}",
                   process=self.code_server, interval=0.2)
        workspace = self.dagster_home / "workspace.yaml"
        workspace.write_text(json.dumps({"load_from": [{"grpc_server": {
            "host": LOOPBACK, "port": port, "location_name": CODE_LOCATION}}]}))
        return workspace

    def _write_stack_file(self, state: StackState) -> None:
        """The one readiness mark every command reads (Settings.load, `status`): replaced atomically, so a
        reader sees the whole old file or the whole new one."""
        info = {
            "state": state.value,
            "s3_endpoint_url": self.settings.s3_endpoint_url,
            "ray_address": self.ray_head.address if self.ray_head else None,
            "receiver_url": self.receiver.url if self.receiver else None,
            "dagster_url": self.dagster_url,
            "pid": os.getpid(),
        }
        self.home.mkdir(parents=True, exist_ok=True)
        partial = self.home / f"{STACK_FILE}.{os.getpid()}"
        partial.write_text(json.dumps(info, indent=2))
        partial.replace(self.home / STACK_FILE)

    def stop(self) -> None:
        stop_group(self.dagster, timeout=20)
        stop_group(self.code_server, timeout=20)
        self.dagster = self.code_server = None
        if self.ray_head:
            self.ray_head.stop()
        if self.store:
            self.store.stop()
        if self.receiver:
            self.receiver.stop()
        (self.home / STACK_FILE).unlink(missing_ok=True)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
