"""Receiver throughput against its ceiling: real Tigris webhook POSTs over HTTP, SQLite and Postgres.

    python bench/receiver.py [--events N] [--concurrency C] [--backend sqlite|postgres|both] [--batch B]
                             [--rounds R] [--latency-samples S] [--json]

Per backend, these ASGI apps are served one after another the same way (`ReceiverServer`: uvicorn with
httptools and uvloop, one process, a free loopback port) and driven by the same load generator (a separate
process, C keep-alive HTTP/1.1 connections over raw asyncio sockets, each sending its next POST when the last
is answered):

- no-op: reads the body and answers 200 at once, the ceiling of this server, generator and machine;
- naive: parses the body and commits one inbox transaction per POST (`Inbox.append` on a worker thread);
- receiver: the real one (`create_app`: bearer auth, body limit, parsing, group commit, 429/503);
- receiver, no fsync wait: the same, with its inbox's commits not waiting for the disk (SQLite
  `synchronous=NORMAL`, Postgres `synchronous_commit=off`): a what-if, not a mode mediasift offers, to show
  how much of the gap to the ceiling is the disk. Such a commit survives the receiver crashing but not the
  machine losing power, so an answered event could be lost (the reconcile sweep would find it again);
- receiver, no inbox: the real app in front of an inbox that stores nothing (every event new): a what-if, to
  show how much of the gap is the receiver's own work (auth, parsing, group commit, answering) rather than
  the inbox's.

Before the runs, the cost of one small commit on the backend's disk is measured: with C connections and one
request in flight on each, a group holds at most C requests, so C / (that cost) bounds any receiver that
answers only after its commit is durable.

N events are sent to each, `batch` per POST; 20% of the POSTs repeat an earlier one byte for byte, so 80% of
the events are distinct. Reported: events/s (events answered per second of wall time, repeats included),
p50/p99 latency per POST, the receiver process's CPU per POST, and the ratios receiver / no-op and
receiver / naive. After each run with an inbox, the inbox must hold every distinct event exactly once and
the answers must add up to the same, or the script exits 1. The generator shares the cores with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import multiprocessing
import os
import queue
import random
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import create_engine, delete, event, func, insert, select, text
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from mediasift.config import Settings
from mediasift.inbox import AppendResult, Inbox, events_table, locks_table
from mediasift.intake.events import Source
from mediasift.intake.parsers import parse_notification
from mediasift.intake.receiver import ReceiverServer, create_app
from mediasift.local.processes import LOOPBACK, free_port

DUPLICATE_SHARE = 0.2
TARGET_SHARE_OF_CEILING = 0.5
TARGET_P99_MS = 20.0
TARGET = f"receiver ≥ {TARGET_SHARE_OF_CEILING} × the no-op ceiling with p99 < {TARGET_P99_MS:.0f} ms"
BUCKET = "bench"
NO_FSYNC_WAIT = "receiver, no fsync wait"
NO_INBOX = "receiver, no inbox"
ENDPOINTS = ("no-op", "naive", "receiver", NO_FSYNC_WAIT, NO_INBOX)
RELAXED_SETTING = {"sqlite": "PRAGMA synchronous=NORMAL", "postgres": "SET synchronous_commit TO off"}
COMMIT_PROBES = 50
JSON_HEADERS = [(b"content-type", b"application/json")]


@dataclass
class Workload:
    bodies: list[bytes]
    expected: set[tuple[str, str, str]]  # (bucket, key, etag) of every distinct event
    events: int
    duplicate_events: int


@dataclass
class Result:
    backend: str
    endpoint: str
    posts: int
    events_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    wall_s: float
    server_cpu_ms_per_post: float
    client_cpu_ms_per_post: float
    non_200: dict[str, int]
    exactly_once: bool | None  # None: nothing kept to check (no-op, no inbox)
    problems: list[str] = field(default_factory=list)
    rounds: int = 1
    events_per_s_range: tuple[float, float] = (0.0, 0.0)
    group_commits: int = 0
    """Group commits of the real receiver's writer (its /metrics), 0 for the others."""
    requests_per_group: float = 0.0
    group_commit_ms: float = 0.0
    """Mean wall time of one group commit's transaction."""
    cycle_ms: float = 0.0
    """Wall time per group commit: the commit, then the event loop answering its group and reading the next."""


def make_workload(events: int, batch: int, seed: int = 7) -> Workload:
    """ceil(events / batch) POSTs of `batch` events; 20% of them repeat an earlier POST byte for byte."""
    rng = random.Random(seed)
    run = secrets.token_hex(4)
    posts = max(1, math.ceil(events / batch))
    duplicates = round(posts * DUPLICATE_SHARE) if posts > 1 else 0
    unique = posts - duplicates
    slots: list[tuple[float, bytes]] = []
    expected: set[tuple[str, str, str]] = set()
    for j in range(unique):
        batch_events = []
        for k in range(batch):
            key = f"media/{run}/{j:07d}-{k}.jpg"
            etag = hashlib.md5(key.encode()).hexdigest()
            expected.add((BUCKET, key, etag))
            batch_events.append({
                "eventVersion": "1", "eventSource": "tigris", "eventName": "OBJECT_CREATED_PUT",
                "eventTime": "2025-05-01T12:00:00Z", "bucket": BUCKET,
                "object": {"key": key, "size": rng.randint(1_000, 50_000_000), "eTag": f'"{etag}"'},
            })
        slots.append((float(j), json.dumps({"events": batch_events}).encode()))
    originals = [body for _, body in slots]
    for _ in range(duplicates):
        j = rng.randrange(unique)
        slots.append((rng.uniform(j + 0.5, unique), originals[j]))  # always after its original
    slots.sort(key=lambda slot: slot[0])
    return Workload([body for _, body in slots], expected, posts * batch, duplicates * batch)


async def _drain(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body


async def _send_json(send: Send, payload: bytes) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [*JSON_HEADERS, (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


def noop_app() -> ASGIApp:
    """Reads the body, answers 200: what serving a POST costs before any work is done."""
    answer = b'{"accepted":1,"duplicates":0,"ignored":0}'

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await _drain(receive)
        await _send_json(send, answer)

    return app


def naive_app(inbox: Inbox) -> ASGIApp:
    """The same durable work without group commit: parse, then one transaction per POST on a worker thread."""
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        parsed = parse_notification(Source.TIGRIS, await _drain(receive))
        result = await run_in_threadpool(inbox.append, parsed.events)
        await _send_json(send, json.dumps({"accepted": result.inserted, "duplicates": result.duplicates,
                                           "ignored": parsed.ignored}).encode())

    return app


class NullInbox:
    """An inbox that keeps nothing and takes every event as new, for the receiver, no inbox what-if."""

    url = "null://"

    def append_groups(self, groups: list[list]) -> list[AppendResult]:
        return [AppendResult(len(events), 0) for events in groups]

    def depth(self) -> int:
        return 0

    def close(self) -> None:
        pass


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection with one request in flight: a load generator costing tens of
    microseconds per request, so that it measures the server rather than itself."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        length = int(head[at + 17:].split(b"\r\n", 1)[0]) if at >= 0 else 0
        if len(self.buffer) < end + 4 + length:
            return
        body = bytes(self.buffer[end + 4:end + 4 + length])
        del self.buffer[:end + 4 + length]
        self.waiter.set_result((int(head[9:12]), body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"server closed the connection: {exc}"))

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter


def _requests(port: int, token: str, bodies: list[bytes]) -> list[bytes]:
    head = (f"POST /webhooks/tigris HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nContent-Length: ")
    return [f"{head}{len(body)}\r\n\r\n".encode() + body for body in bodies]


def _client(port: int, requests: list[bytes], concurrency: int, out: multiprocessing.Queue) -> None:
    """Load generator, run in its own process so it does not share the server's GIL."""
    import uvloop

    async def fire() -> dict:
        loop = asyncio.get_running_loop()
        latencies = [0.0] * len(requests)
        statuses: dict[str, int] = {}
        totals = {"accepted": 0, "duplicates": 0}
        next_index = iter(range(len(requests)))

        async def worker() -> None:
            _, connection = await loop.create_connection(_Connection, LOOPBACK, port)
            for i in next_index:
                started = time.perf_counter()
                status, payload = await connection.request(requests[i])
                latencies[i] = time.perf_counter() - started
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                if status == 200:
                    answer = json.loads(payload)
                    totals["accepted"] += answer["accepted"]
                    totals["duplicates"] += answer["duplicates"]
            connection.transport.close()

        cpu, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return {"latencies": latencies, "statuses": statuses, "wall": time.perf_counter() - started,
                "cpu": time.process_time() - cpu, **totals}

    out.put(uvloop.run(fire()))


def drive(app: ASGIApp, token: str, workload: Workload, concurrency: int) -> tuple[dict, float]:
    """Serve `app`, fire the workload at it from the generator process; the answers and the server's CPU."""
    server = ReceiverServer(app, LOOPBACK, free_port()).start()
    try:
        context = multiprocessing.get_context("spawn")
        out = context.Queue()
        client = context.Process(target=_client, daemon=True,
                                 args=(server.port, _requests(server.port, token, workload.bodies), concurrency, out))
        client.start()
        cpu = time.process_time()
        while True:
            try:
                answers = out.get(timeout=1)
                break
            except queue.Empty:
                if not client.is_alive():
                    raise RuntimeError(f"load generator exited with code {client.exitcode}") from None
        server_cpu = time.process_time() - cpu
        client.join(timeout=30)
    finally:
        server.stop()
    return answers, server_cpu


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def verify(inbox: Inbox, workload: Workload, answers: dict) -> list[str]:
    """Every distinct event in the inbox exactly once; an empty list means it holds."""
    problems = []
    with inbox.engine.connect() as conn:
        rows, keys = conn.execute(
            select(func.count(), func.count(func.distinct(events_table.c.dedup_key)))
        ).one()
    distinct = len(workload.expected)
    if rows != distinct or keys != rows:
        problems.append(f"inbox holds {rows} events ({keys} distinct keys), expected {distinct}")
    stored = [(e.bucket, e.key, e.etag) for e in inbox.events_after(0, limit=rows + 1)]
    if set(stored) != workload.expected or len(stored) != len(set(stored)):
        missing = workload.expected - set(stored)
        problems.append(f"inbox events differ from those sent: {len(missing)} missing, "
                        f"{len(set(stored) - workload.expected)} unexpected, {len(stored) - len(set(stored))} repeated")
    pending = inbox.counts()["pending"]
    if pending != distinct:
        problems.append(f"{pending} pending versions, expected {distinct}")
    if answers["accepted"] != distinct or answers["duplicates"] != workload.duplicate_events:
        problems.append(f"answers said accepted={answers['accepted']} duplicates={answers['duplicates']}, "
                        f"expected {distinct} and {workload.duplicate_events}")
    return problems


@contextmanager
def fresh_inboxes(backend: str) -> Iterator[tuple[Path, Callable[[], str]]]:
    """A temporary MEDIASIFT_HOME and a factory of URLs of new, empty inboxes on `backend` (one throwaway
    Postgres server for all of them)."""
    with ExitStack() as stack:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mediasift-bench-")))
        if backend == "sqlite":
            yield home, lambda: f"sqlite:///{home / uuid.uuid4().hex}.db"
            return
        from mediasift.local.postgres import throwaway_postgres

        server = stack.enter_context(throwaway_postgres())
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        stack.callback(admin.dispose)

        def database() -> str:
            name = f"bench_{uuid.uuid4().hex[:12]}"
            with admin.connect() as conn:
                conn.execute(text(f"CREATE DATABASE {name}"))
            return server.rsplit("/", 1)[0] + f"/{name}"

        yield home, database


def relax_commits(inbox: Inbox, backend: str) -> None:
    """Make every connection of `inbox` commit without waiting for the disk (connections are remade)."""
    statement = RELAXED_SETTING[backend]

    def relax(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(statement)
        cursor.close()
        if backend == "postgres":
            dbapi_connection.commit()

    event.listen(inbox.engine, "connect", relax)
    inbox.engine.dispose()


def commit_cost_ms(url: str) -> float:
    """Median milliseconds of one durable commit that writes a row and removes it again."""
    inbox = Inbox(url)
    locks = locks_table.c
    timings = []
    try:
        for n in range(COMMIT_PROBES):
            started = time.perf_counter()
            with inbox.engine.begin() as conn:
                conn.execute(insert(locks_table).values(name=f"probe-{n}", owner="bench", expires_at=0.0))
                conn.execute(delete(locks_table).where(locks.name == f"probe-{n}"))
            timings.append(time.perf_counter() - started)
    finally:
        inbox.close()
    return percentile(timings, 0.5) * 1000


def run_endpoint(backend: str, endpoint: str, home: Path, new_inbox: Callable[[], str], workload: Workload,
                 concurrency: int) -> Result:
    token = secrets.token_urlsafe(24)
    inbox = None if endpoint == "no-op" else NullInbox() if endpoint == NO_INBOX else Inbox(new_inbox())
    if endpoint == NO_FSYNC_WAIT:
        relax_commits(inbox, backend)
    kept = isinstance(inbox, Inbox)
    try:
        if inbox is None:
            app = noop_app()
        elif endpoint == "naive":
            app = naive_app(inbox)
        else:
            settings = Settings(home=home, webhook_token=SecretStr(token),
                                max_backlog=len(workload.expected) * 2 + 1000)
            app = create_app(settings, inbox)
        answers, server_cpu = drive(app, token, workload, concurrency)
        groups = group_commits(app, answers["wall"])
        non_200 = {code: n for code, n in answers["statuses"].items() if code != "200"}
        problems = verify(inbox, workload, answers) if kept else []
        if non_200:
            problems.append(f"non-200 answers: {non_200}")
    finally:
        if inbox is not None:
            inbox.close()
    posts, latencies = len(workload.bodies), answers["latencies"]
    return Result(
        backend=backend, endpoint=endpoint, posts=posts, events_per_s=workload.events / answers["wall"],
        p50_ms=percentile(latencies, 0.50) * 1000, p99_ms=percentile(latencies, 0.99) * 1000,
        max_ms=max(latencies) * 1000, wall_s=answers["wall"], server_cpu_ms_per_post=server_cpu / posts * 1000,
        client_cpu_ms_per_post=answers["cpu"] / posts * 1000, non_200=non_200,
        exactly_once=not problems if kept else None, problems=problems,
        events_per_s_range=(workload.events / answers["wall"],) * 2, **groups,
    )


def group_commits(app: ASGIApp, wall: float) -> dict:
    """How the receiver's writer grouped the requests, read from its own metrics (nothing for other apps)."""
    metrics = getattr(getattr(app, "state", None), "metrics", None)
    if metrics is None:
        return {}
    sample = metrics.registry.get_sample_value
    count = int(sample("mediasift_inbox_commit_seconds_count") or 0)
    if not count:
        return {}
    return {"group_commits": count, "requests_per_group": sample("mediasift_inbox_commit_requests_sum") / count,
            "group_commit_ms": sample("mediasift_inbox_commit_seconds_sum") / count * 1000,
            "cycle_ms": wall / count * 1000}


def durability(backend: str, url: str) -> str:
    """What a commit means on this backend, read from a live connection."""
    inbox = Inbox(url)
    try:
        with inbox.engine.connect() as conn:
            if backend == "sqlite":
                mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
                level = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[
                    conn.exec_driver_sql("PRAGMA synchronous").scalar()]
                return f"journal_mode={mode} synchronous={level}"
            return ", ".join(f"{name}={conn.exec_driver_sql(f'SHOW {name}').scalar()}"
                             for name in ("fsync", "synchronous_commit", "wal_sync_method"))
    finally:
        inbox.close()


def run_backend(backend: str, workload: Workload, concurrency: int, rounds: int) -> tuple[list[Result], str, float]:
    """The endpoints in turn, `rounds` times over (so that a noisy neighbour hits them all alike); per endpoint
    the round of median throughput, carrying the problems of every round and the spread of throughputs; what
    a commit means on the backend, and what one costs."""
    runs: dict[str, list[Result]] = {endpoint: [] for endpoint in ENDPOINTS}
    with fresh_inboxes(backend) as (home, new_inbox):
        commit_ms = commit_cost_ms(new_inbox())
        for _ in range(rounds):
            for endpoint in ENDPOINTS:
                runs[endpoint].append(run_endpoint(backend, endpoint, home, new_inbox, workload, concurrency))
        return [_median(results) for results in runs.values()], durability(backend, new_inbox()), commit_ms


def _median(results: list[Result]) -> Result:
    ordered = sorted(results, key=lambda r: r.events_per_s)
    median = ordered[len(ordered) // 2]
    problems = [problem for r in results for problem in r.problems]
    return Result(**{**asdict(median), "problems": problems, "rounds": len(results),
                     "events_per_s_range": (ordered[0].events_per_s, ordered[-1].events_per_s),
                     "exactly_once": None if median.exactly_once is None else not problems})


def summarize(results: list[Result], durabilities: dict[str, str], commit_ms: dict[str, float],
              skipped: dict[str, str], args: argparse.Namespace) -> dict:
    verdicts = {}
    for backend in durabilities:
        by_endpoint = {r.endpoint: r for r in results if r.backend == backend}
        receiver, ceiling, naive = by_endpoint["receiver"], by_endpoint["no-op"], by_endpoint["naive"]
        share = receiver.events_per_s / ceiling.events_per_s
        verdicts[backend] = {
            "receiver_over_noop": share, "receiver_over_naive": receiver.events_per_s / naive.events_per_s,
            "no_fsync_wait_over_noop": by_endpoint[NO_FSYNC_WAIT].events_per_s / ceiling.events_per_s,
            "no_inbox_over_noop": by_endpoint[NO_INBOX].events_per_s / ceiling.events_per_s,
            "commit_ms": commit_ms[backend],
            "durable_bound_events_per_s": args.concurrency * args.batch / (commit_ms[backend] / 1000),
            "target_met": share >= TARGET_SHARE_OF_CEILING and receiver.p99_ms < TARGET_P99_MS
            and bool(receiver.exactly_once),
        }
    return {
        "events": args.events, "concurrency": args.concurrency, "batch": args.batch, "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "results": [asdict(r) for r in results], "ratios": verdicts, "durability": durabilities,
        "target": TARGET, "skipped": skipped,
        "note": "the load generator runs on the same machine and competes with the server for the same cores",
    }


def print_table(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 140)
    table = Table(title=f"webhook POSTs: {summary['events']} events per endpoint, batch {summary['batch']}, "
                        f"{summary['concurrency']} connections, {summary['cpus']} cores, median of "
                        f"{summary['rounds']} round(s)")
    for column in ("backend", "endpoint", "events/s", "range", "p50 ms", "p99 ms", "max ms", "server CPU ms/POST",
                   "× no-op", "× naive", "exactly-once"):
        table.add_column(column, justify="left" if column in ("backend", "endpoint") else "right")
    rates = {(r["backend"], r["endpoint"]): r["events_per_s"] for r in summary["results"]}
    for r in summary["results"]:
        once = {None: "-", True: "[green]yes[/]", False: "[bold red]NO[/]"}[r["exactly_once"]]
        low, high = r["events_per_s_range"]
        table.add_row(r["backend"], r["endpoint"], f"{r['events_per_s']:,.0f}", f"{low:,.0f}–{high:,.0f}",
                      f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}", f"{r['max_ms']:.1f}",
                      f"{r['server_cpu_ms_per_post']:.3f}",
                      f"{r['events_per_s'] / rates[(r['backend'], 'no-op')]:.2f}",
                      f"{r['events_per_s'] / rates[(r['backend'], 'naive')]:.2f}", once)
    console.print(table)
    for r in summary["results"]:
        if r["group_commits"]:
            console.print(f"{r['backend']} {r['endpoint']}: {r['group_commits']:,} group commits of "
                          f"{r['requests_per_group']:.1f} requests; each took {r['group_commit_ms']:.2f} ms of a "
                          f"{r['cycle_ms']:.2f} ms cycle, the rest being the event loop answering a group and "
                          f"reading the next")
    for r in summary["results"]:
        for problem in r["problems"]:
            console.print(f"[bold red]{r['backend']} {r['endpoint']}: {problem}[/]")
    for backend, verdict in summary["ratios"].items():
        met = "[green]met[/]" if verdict["target_met"] else "[bold red]NOT met[/]"
        console.print(f"{backend}: receiver / no-op {verdict['receiver_over_noop']:.2f}, receiver / naive "
                      f"{verdict['receiver_over_naive']:.2f}; {summary['target']}: {met}; "
                      f"{summary['durability'][backend]}")
        console.print(f"{backend}: one durable commit {verdict['commit_ms']:.2f} ms (median), so answering after "
                      f"durable commits, {summary['concurrency']} connections get at most "
                      f"{verdict['durable_bound_events_per_s']:,.0f} events/s; without waiting for the disk the "
                      f"receiver reaches {verdict['no_fsync_wait_over_noop']:.2f} × no-op, and with no inbox at all "
                      f"{verdict['no_inbox_over_noop']:.2f} × no-op")
    for backend, reason in summary["skipped"].items():
        console.print(f"[yellow]{backend} skipped: {reason}[/]")
    console.print(f"note: {summary['note']}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000, help="events sent to each endpoint, repeats included")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent client connections")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--batch", type=int, default=1, help="events per POST")
    parser.add_argument("--rounds", type=int, default=1,
                        help="times each endpoint is measured, in turn; the table shows the median round")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--latency-samples", type=int, default=3,
                        help="objects timed from put_object to run launch and materialization (0: skip)")
    args = parser.parse_args(argv)
    if min(args.events, args.concurrency, args.batch, args.rounds) < 1:
        parser.error("--events, --concurrency, --batch and --rounds must be at least 1")
    workload = make_workload(args.events, args.batch)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    skipped: dict[str, str] = {}
    if args.backend == "both":
        from mediasift.local.postgres import check_available

        try:
            check_available()
        except RuntimeError as error:  # `both` still measures SQLite; `--backend postgres` fails instead
            skipped["postgres"] = str(error)
            backends.remove("postgres")
    results, durabilities, commit_ms = [], {}, {}
    for backend in backends:
        backend_results, durabilities[backend], commit_ms[backend] = run_backend(
            backend, workload, args.concurrency, args.rounds)
        results += backend_results
    summary = summarize(results, durabilities, commit_ms, skipped, args)
    pipeline = []
    if args.latency_samples:
        import latency  # bench/latency.py, beside this script; it loads Dagster

        pipeline = latency.measure(args.latency_samples)
    if args.json:
        print(json.dumps({**summary, "pipeline_latency_s": pipeline}, indent=2, ensure_ascii=False))
    else:
        print_table(summary)
        if pipeline:
            latency.report(pipeline, Settings().sensor_interval_s)
    if not all(r.exactly_once is not False for r in results):
        print("FAILED: an inbox does not hold every distinct event exactly once", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
