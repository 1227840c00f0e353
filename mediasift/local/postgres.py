"""A throwaway PostgreSQL server for tests and benchmarks, started by pytest-postgresql's executor.

The Postgres paths of the inbox (advisory locks, ON CONFLICT, commit order) must be checked against a
real server, not SQLite pretending to be one, and without touching any cluster the machine already
runs. So each use gets its own cluster: `pg_ctl initdb` in a temp dir, on a free loopback port,
stopped and removed after. pytest-postgresql's own `postgresql_proc` fixture is not used: it puts the
cluster under pytest's basetemp, which is private to the user running pytest (mode 0700), and as root
the server must run as another user (see `_unprivileged_user`), who cannot reach it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mediasift.local.processes import LOOPBACK, free_port

INSTALL_HINT = "install the PostgreSQL server binaries (Debian: `apt-get install postgresql-15`)"


def postgres_bin(name: str) -> str:
    """`name` (pg_ctl, initdb) from PATH, else from Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if candidates:
        return candidates[-1]
    raise RuntimeError(f"`{name}` not found on PATH nor in /usr/lib/postgresql/*/bin: {INSTALL_HINT}")


def check_available() -> str:
    """The pg_ctl to use; RuntimeError saying what to install when the server or pytest-postgresql is missing."""
    pg_ctl = postgres_bin("pg_ctl")
    try:
        import pytest_postgresql  # noqa: F401 - only checking that the dev extras are installed
    except ImportError as error:
        raise RuntimeError("pytest-postgresql is missing: install the dev extras (`pip install -e '.[dev]'`)"
                           ) from error
    return pg_ctl


def _unprivileged_user() -> str | None:
    """PostgreSQL refuses to run as root: as root, run it as `postgres` (or `nobody`) via runuser."""
    if os.geteuid() != 0:
        return None
    if shutil.which("runuser") is None:
        raise RuntimeError("running as root and `runuser` is missing: PostgreSQL refuses to run as root")
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return user
    raise RuntimeError("running as root and neither a `postgres` nor a `nobody` user exists")


def _pg_ctl_as(user: str, pg_ctl: str, root: Path, workdir: Path) -> str:
    """A pg_ctl that runs as `user`: the executor calls one program for every step (version, initdb,
    start, status, stop), so a wrapper script is where the user switch goes. The script stays root's,
    in `root`; the cluster lives in `workdir`, which is `user`'s."""
    entry = pwd.getpwnam(user)
    root.chmod(0o711)
    os.chown(workdir, entry.pw_uid, entry.pw_gid)
    reachable = subprocess.run(["runuser", "-u", user, "--", "test", "-w", str(workdir)], check=False)
    if reachable.returncode != 0:
        raise RuntimeError(f"{workdir} is not writable by user {user!r} (PostgreSQL cannot run as root): "
                           "pass a base_dir whose parents that user can traverse")
    wrapper = root / "pg_ctl"
    wrapper.write_text(f"#!/bin/sh\ncd {shlex.quote(str(workdir))} || exit 1\n"
                       f'exec runuser -u {shlex.quote(user)} -- {shlex.quote(pg_ctl)} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


@dataclass
class PostgresServer:
    """A running throwaway cluster: its URL, and stop/start for tests of a database going away and back."""

    url: str
    executor: object

    def stop(self) -> None:
        self.executor.stop()

    def start(self) -> None:
        self.executor.start()
        if self.executor.process is not None and self.executor.process.wait(timeout=60) != 0:
            raise RuntimeError(f"pg_ctl start exited with {self.executor.process.returncode}")


@contextmanager
def throwaway_postgres(base_dir: Path | None = None) -> Iterator[str]:
    """A fresh PostgreSQL cluster on 127.0.0.1:<free port>; yields its SQLAlchemy URL
    (`postgresql+psycopg://postgres@127.0.0.1:PORT/postgres`, trust auth), stops and deletes it on exit."""
    with throwaway_postgres_server(base_dir) as server:
        yield server.url


@contextmanager
def throwaway_postgres_server(base_dir: Path | None = None) -> Iterator[PostgresServer]:
    """`throwaway_postgres`, yielding the server itself.
    Durability settings are the server's defaults (the executor's `-F` is undone): benchmarks rely on them."""
    pg_ctl = check_available()
    from pytest_postgresql.executors import PostgreSQLExecutor

    user = _unprivileged_user()
    root = Path(tempfile.mkdtemp(prefix="mediasift-pg-", dir=base_dir)).resolve()
    try:
        workdir = root / "cluster"
        workdir.mkdir()
        port = free_port()
        executor = PostgreSQLExecutor(
            executable=_pg_ctl_as(user, pg_ctl, root, workdir) if user else pg_ctl,
            host=LOOPBACK, port=port, datadir=str(workdir / "data"), unixsocketdir=str(workdir),
            logfile=str(workdir / "postgres.log"), startparams="-w -t 60", dbname="postgres", user="postgres",
            postgres_options=f"-c listen_addresses={LOOPBACK} -c fsync=on", timeout=60,
        )
        try:
            executor.start()  # returns once the port accepts TCP, maybe still "starting up"
            if executor.process is not None and executor.process.wait(timeout=60) != 0:  # pg_ctl start -w
                raise RuntimeError(f"pg_ctl start exited with {executor.process.returncode}")
        except Exception as error:
            if executor.running():  # pg_ctl status: up, though not as asked
                executor.stop()
            log = workdir / "postgres.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            output = getattr(error, "output", None) or b""
            output = output.decode(errors="replace") if isinstance(output, bytes) else output
            raise RuntimeError(f"PostgreSQL did not start on {LOOPBACK}:{port} ({error}): {output}{tail}") from error
        try:
            yield PostgresServer(f"postgresql+psycopg://postgres@{LOOPBACK}:{port}/postgres", executor)
        finally:
            if executor.running():
                executor.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
