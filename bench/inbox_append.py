"""CPU per group commit of `Inbox.append_groups`, without HTTP: SQLite and Postgres.

    python bench/inbox_append.py [--commits N] [--group G] [--backend sqlite|postgres|both] [--prefill P]

The receiver's group commit hands the inbox one group per POST, so a commit of G one-event POSTs is
`append_groups` with G groups of one event: that is what is timed here, N times, after P events are already
stored (so the SELECTs look through a table that holds something). Two mixes:

- creates: Tigris uploads of new keys, 20% of the groups a redelivery of an earlier POST (as in
  `bench/receiver.py`);
- with deletes: the same, with one group in eight a delete without an ETag of a stored key (S3's form, which
  the inbox resolves to a version).

Reported per mix and backend: CPU µs per commit and per event (this process's CPU, which for SQLite includes
the database's own work and for Postgres only the client's: the part that runs on the receiver's commit
thread), and wall µs per commit. The receiver's event loop waits on that thread, so its CPU caps the
receiver's throughput.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

from mediasift.inbox import Inbox
from mediasift.intake.events import EventKind, NotificationEvent, Source

BUCKET = "bench"
REPEAT_SHARE = 0.2
DELETE_EVERY = 8


def upload(i: int, rng: random.Random) -> NotificationEvent:
    """A Tigris create as the parser makes it (the event time is its occurrence)."""
    key = f"media/{i:07d}.jpg"
    return NotificationEvent(Source.TIGRIS, EventKind.CREATED, BUCKET, key, hashlib.md5(key.encode()).hexdigest(),
                             size=rng.randint(1_000, 50_000_000), sequencer=f"2025-05-01T12:00:{i % 60:02d}+00:00")


def removal(i: int, rng: random.Random) -> NotificationEvent:
    """An S3 delete without an ETag (its sequencer unique), which the inbox resolves to a version."""
    return NotificationEvent(Source.S3, EventKind.DELETED, BUCKET, f"media/{i:07d}.jpg",
                             sequencer=f"{rng.getrandbits(64):016X}")


def commits(count: int, group: int, start: int, deletes: bool, seed: int = 11) -> list[list[list[NotificationEvent]]]:
    """`count` commits of `group` one-event groups, new keys from `start` on, repeats and deletes mixed in."""
    rng = random.Random(seed)
    sent: list[NotificationEvent] = []
    out = []
    n = start
    for _ in range(count):
        groups = []
        for g in range(group):
            if deletes and g % DELETE_EVERY == DELETE_EVERY - 1:
                e = removal(rng.randrange(start), rng)
            elif sent and rng.random() < REPEAT_SHARE:
                e = rng.choice(sent)
            else:
                e = upload(n, rng)
                n += 1
                sent.append(e)
            groups.append([e])
        out.append(groups)
    return out


@contextmanager
def inbox_urls(backend: str) -> Iterator[Callable[[], str]]:
    """A factory of URLs of new, empty inboxes on `backend` (one throwaway Postgres server for all)."""
    with ExitStack() as stack:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mediasift-append-")))
        if backend == "sqlite":
            names = iter(range(1_000_000))
            yield lambda: f"sqlite:///{home / str(next(names))}.db"
            return
        from mediasift.local.postgres import throwaway_postgres

        server = stack.enter_context(throwaway_postgres())
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        stack.callback(admin.dispose)
        names = iter(range(1_000_000))

        def database() -> str:
            name = f"append_{next(names)}"
            with admin.connect() as conn:
                conn.execute(text(f"CREATE DATABASE {name}"))
            return server.rsplit("/", 1)[0] + f"/{name}"

        yield database


def measure(url: str, args: argparse.Namespace, deletes: bool) -> dict[str, float]:
    """Prefill, warm up (statement caches, connection pool), then time each commit."""
    inbox = Inbox(url)
    try:
        rng = random.Random(3)
        for i in range(0, args.prefill, 500):
            inbox.append([upload(j, rng) for j in range(i, min(i + 500, args.prefill))])
        warm = commits(100, args.group, args.prefill + 10_000_000, deletes, seed=5)
        for groups in warm:
            inbox.append_groups(groups)
        cpu, wall = [], []
        for groups in commits(args.commits, args.group, args.prefill, deletes):
            c0, w0 = time.process_time(), time.perf_counter()
            inbox.append_groups(groups)
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
        total_cpu = sum(cpu)
        return {"cpu_us_per_commit": total_cpu / len(cpu) * 1e6,
                "cpu_us_per_event": total_cpu / (len(cpu) * args.group) * 1e6,
                "wall_us_per_commit_median": statistics.median(wall) * 1e6}
    finally:
        inbox.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=300, help="commits timed per mix and backend")
    parser.add_argument("--group", type=int, default=16, help="one-event groups per commit (POSTs per commit)")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--prefill", type=int, default=5000, help="events stored before the timed commits")
    args = parser.parse_args(argv)
    if min(args.commits, args.group, args.prefill) < 1:
        parser.error("--commits, --group and --prefill must be at least 1")
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    print(f"{'backend':<10} {'mix':<14} {'CPU µs/commit':>14} {'CPU µs/event':>13} {'wall µs/commit p50':>18}")
    for backend in backends:
        with inbox_urls(backend) as new_url:
            for mix, deletes in (("creates", False), ("with deletes", True)):
                r = measure(new_url(), args, deletes)
                print(f"{backend:<10} {mix:<14} {r['cpu_us_per_commit']:>14.0f} {r['cpu_us_per_event']:>13.1f} "
                      f"{r['wall_us_per_commit_median']:>18.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
