"""Test and benchmark helpers that start real servers: a throwaway PostgreSQL cluster.

The Postgres paths of the inbox (advisory locks, ON CONFLICT, commit order) must be checked against a
real server, not SQLite pretending to be one, and without touching any cluster the machine already
runs. So each use gets its own cluster: `initdb` in a temp dir, on a free loopback port, removed after.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa

from mediasift.local.processes import LOOPBACK, free_port, wait_until
from mediasift.store.records import schema

INSTALL_HINT = "install the PostgreSQL server binaries (Debian: `apt-get install postgresql-15`)"


def postgres_bin(name: str) -> str:
    """`name` (initdb, pg_ctl) from PATH, else from Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if candidates:
        return candidates[-1]
    raise RuntimeError(f"`{name}` not found on PATH nor in /usr/lib/postgresql/*/bin: {INSTALL_HINT}")


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


@contextmanager
def throwaway_postgres(base_dir: Path | None = None) -> Iterator[str]:
    """A fresh PostgreSQL cluster on 127.0.0.1:<free port>; yields its SQLAlchemy URL
    (`postgresql+psycopg://postgres@127.0.0.1:PORT/postgres`, trust auth), stops and deletes it on exit.
    Durability settings (fsync, synchronous_commit) are left at their defaults: benchmarks rely on them."""
    initdb, pg_ctl = postgres_bin("initdb"), postgres_bin("pg_ctl")
    user = _unprivileged_user()
    prefix = ["runuser", "-u", user, "--"] if user else []
    root = Path(tempfile.mkdtemp(prefix="mediasift-pg-", dir=base_dir)).resolve()
    data, log = root / "data", root / "postgres.log"
    started = False
    try:
        if user:
            entry = pwd.getpwnam(user)
            os.chown(root, entry.pw_uid, entry.pw_gid)
            if subprocess.run([*prefix, "test", "-w", str(root)], check=False).returncode != 0:
                raise RuntimeError(f"{root} is not reachable by user {user!r} (PostgreSQL cannot run as root): "
                                   "pass a base_dir whose parents that user can traverse")

        def run(*argv: str) -> None:
            done = subprocess.run([*prefix, *argv], cwd=root, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr or done.stdout}{tail}")

        run(initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync", "--no-locale",
            "--encoding=UTF8")
        port = free_port()
        options = f"-p {port} -k {root} -c listen_addresses={LOOPBACK}"
        run(pg_ctl, "start", "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60")
        started = True
        url = f"postgresql+psycopg://postgres@{LOOPBACK}:{port}/postgres"

        def accepts() -> bool:
            import psycopg

            with psycopg.connect(f"host={LOOPBACK} port={port} user=postgres dbname=postgres", connect_timeout=2):
                return True

        wait_until(accepts, timeout=30, what=f"postgres on {LOOPBACK}:{port}")
        yield url
    finally:
        if started:
            subprocess.run([*prefix, pg_ctl, "stop", "-D", str(data), "-m", "fast", "-w", "-t", "60"],
                           cwd=root, capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


def embedding_like_vectors(n: int, dim: int, seed: int = 0, intrinsic: int = 48, clusters: int = 1000) -> np.ndarray:
    """Unit vectors shaped like real embeddings: clusters on a low-dimensional subspace plus a little
    isotropic noise. (Isotropic random vectors have no neighbourhood structure at all; no ANN index, and
    no embedding model, produces them.) The same seed family always gives the same space."""
    basis, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(dim, intrinsic)))
    centers = np.random.default_rng(2).normal(size=(clusters, intrinsic))
    rng = np.random.default_rng(seed)
    z = centers[rng.integers(0, clusters, n)] + 0.35 * rng.normal(size=(n, intrinsic))
    x = (z @ basis.T + 0.02 * rng.normal(size=(n, dim))).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def synthetic_rows(vectors: np.ndarray, layer: str = "pages") -> pa.Table:
    """Index rows around given vectors (lineage filled in), for recall tests and search benchmarks."""
    n, dim = vectors.shape
    ids = [f"{i:016x}" for i in range(n)]
    columns = {name: pa.nulls(n, field.type) for name, field in zip(schema(dim).names, schema(dim), strict=True)}
    columns.update({
        "version_hash": pa.array(ids), "row_no": pa.array(np.zeros(n, dtype=np.int32)),
        "bucket": pa.array(["synthetic"] * n), "key": pa.array([f"doc/{i}.pdf" for i in range(n)]),
        "etag": pa.array(ids), "object_id": pa.array(ids), "extractor": pa.array(["synthetic"] * n),
        "layer": pa.array([layer] * n), "modality": pa.array(["pdf"] * n), "kind": pa.array(["page"] * n),
        "text": pa.array([f"document {i}" for i in range(n)]), "page": pa.array(np.ones(n, dtype=np.int32)),
        "extra": pa.array(["{}"] * n),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
    })
    return pa.table(columns, schema=schema(dim))
