"""Receiver throughput: real Tigris webhook POSTs over HTTP into the real receiver, SQLite vs Postgres.

    python bench/receiver.py [--events N] [--concurrency C] [--backend sqlite|postgres|both] [--batch B] [--json]

For each backend the receiver (`create_app` + `ReceiverServer`, bearer token on) is started on a free
loopback port in this process; a separate client process fires the POSTs from C concurrent connections
(httpx.AsyncClient). N is the number of events sent: 20% of the POSTs are exact duplicates of earlier
ones, so 80% of the events are distinct. Reported: per-request latency (p50, p99) and durable accepted
events/s (distinct events committed / wall time). Then the inbox must hold every distinct event exactly
once, or the run fails with exit code 1. The client competes with the receiver for the same cores.
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
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

import latency  # bench/latency.py, beside this script
from pydantic import SecretStr
from sqlalchemy import func, select

from mediasift.config import Settings
from mediasift.inbox import Inbox, events_table
from mediasift.intake.receiver import ReceiverServer, create_app
from mediasift.local.processes import LOOPBACK, free_port

DUPLICATE_SHARE = 0.2
TARGET_EVENTS_PER_S = 1000
TARGET_P99_MS = 50.0
TARGET = "target on 2 cores: ≥ 1,000 events/s on SQLite with p99 < 50 ms"
BUCKET = "bench"


@dataclass
class Workload:
    bodies: list[bytes]
    expected: set[tuple[str, str, str]]  # (bucket, key, etag) of every distinct event
    duplicate_posts: int
    duplicate_events: int


@dataclass
class Result:
    backend: str
    posts: int
    distinct_events: int
    duplicate_events: int
    events_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    wall_s: float
    non_200: dict[str, int]
    server_cpu_s: float
    client_cpu_s: float
    durability: str
    exactly_once: bool
    problems: list[str] = field(default_factory=list)


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
    return Workload([body for _, body in slots], expected, duplicates, duplicates * batch)


class RawConnection:
    """One keep-alive HTTP/1.1 connection over asyncio streams: a load generator costing a few tens of
    microseconds per request, so the client measures the receiver rather than itself (httpx spends
    over a millisecond of CPU per POST here, a whole core at the receiver's rate)."""

    def __init__(self, host: str, port: int, token: str):
        self.host, self.port = host, port
        self.head = (f"POST /webhooks/tigris HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
                     "Content-Type: application/json\r\nContent-Length: ").encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(self.head + str(len(body)).encode() + b"\r\n\r\n" + body)
        status = int((await self.reader.readline()).split(b" ", 2)[1])
        length, close = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
            elif name.lower() == b"connection" and value.strip().lower() == b"close":
                close = True
        payload = await self.reader.readexactly(length)
        if close:
            await self.close()
        return status, payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = self.reader = None


def _client(url: str, token: str, bodies: list[bytes], concurrency: int, kind: str,
            out: multiprocessing.Queue) -> None:
    """Load generator, run in its own process so it does not share the receiver's GIL."""
    import httpx

    async def fire() -> dict:
        latencies = [0.0] * len(bodies)
        statuses: dict[str, int] = {}
        totals = {"accepted": 0, "duplicates": 0}
        next_index = iter(range(len(bodies)))
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as client:
            (await client.get("/healthz")).raise_for_status()

            async def worker() -> None:
                host, port = url.removeprefix("http://").rsplit(":", 1)
                raw = RawConnection(host, int(port), token) if kind == "raw" else None
                for i in next_index:
                    started = time.perf_counter()
                    if raw is not None:
                        status, payload = await raw.post(bodies[i])
                    else:
                        response = await client.post("/webhooks/tigris", content=bodies[i])
                        status, payload = response.status_code, response.content
                    latencies[i] = time.perf_counter() - started
                    statuses[str(status)] = statuses.get(str(status), 0) + 1
                    if status == 200:
                        answer = json.loads(payload)
                        totals["accepted"] += answer["accepted"]
                        totals["duplicates"] += answer["duplicates"]
                if raw is not None:
                    await raw.close()

            cpu, started = time.process_time(), time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            wall = time.perf_counter() - started
        return {"latencies": latencies, "statuses": statuses, "wall": wall, **totals,
                "cpu": time.process_time() - cpu}

    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        out.put(runner.run(fire()))


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
        repeated = conn.execute(
            select(events_table.c.dedup_key).group_by(events_table.c.dedup_key).having(func.count() > 1).limit(5)
        ).scalars().all()
    distinct = len(workload.expected)
    if rows != distinct:
        problems.append(f"inbox holds {rows} events, expected {distinct}")
    if keys != rows or repeated:
        problems.append(f"dedup_key repeats: {rows - keys} (e.g. {repeated})")
    stored = [(e.bucket, e.key, e.etag) for e in inbox.events_after(0, limit=rows + 1)]
    if set(stored) != workload.expected or len(stored) != len(set(stored)):
        missing = workload.expected - set(stored)
        problems.append(f"inbox events differ from those sent: {len(missing)} missing, "
                        f"{len(set(stored) - workload.expected)} unexpected, {len(stored) - len(set(stored))} repeated")
    pending = inbox.counts()["pending"]
    if pending != distinct:
        problems.append(f"{pending} pending versions, expected {distinct}")
    if answers["accepted"] != distinct or answers["duplicates"] != workload.duplicate_events:
        problems.append(f"responses said accepted={answers['accepted']} duplicates={answers['duplicates']}, "
                        f"expected {distinct} and {workload.duplicate_events}")
    return problems


def durability(inbox: Inbox) -> str:
    """What a commit means on this backend, read from the live connection."""
    with inbox.engine.connect() as conn:
        if inbox.is_sqlite:
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            level = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[conn.exec_driver_sql("PRAGMA synchronous").scalar()]
            return f"journal_mode={mode} synchronous={level}"
        return ", ".join(f"{name}={conn.exec_driver_sql(f'SHOW {name}').scalar()}"
                         for name in ("fsync", "synchronous_commit", "wal_sync_method"))


def run_backend(backend: str, workload: Workload, concurrency: int, client_kind: str) -> Result:
    token = secrets.token_urlsafe(24)
    with ExitStack() as stack:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mediasift-bench-")))
        if backend == "postgres":
            from mediasift.local.postgres import throwaway_postgres

            database_url = stack.enter_context(throwaway_postgres())
        else:
            database_url = None
        settings = Settings(home=home, database_url=database_url, webhook_token=SecretStr(token),
                            max_backlog=len(workload.expected) * 2 + 1000)
        inbox = Inbox(settings.inbox_url)
        stack.callback(inbox.close)
        server = ReceiverServer(create_app(settings, inbox), LOOPBACK, free_port()).start()
        stack.callback(server.stop)

        out = multiprocessing.get_context("spawn").Queue()
        client = multiprocessing.get_context("spawn").Process(
            target=_client, args=(server.url, token, workload.bodies, concurrency, client_kind, out), daemon=True)
        cpu = time.process_time()
        client.start()
        while True:
            try:
                answers = out.get(timeout=1)
                break
            except queue.Empty:
                if not client.is_alive():
                    raise RuntimeError(f"load generator exited with code {client.exitcode}") from None
        server_cpu = time.process_time() - cpu
        client.join(timeout=30)

        latencies = answers["latencies"]
        problems = verify(inbox, workload, answers)
        non_200 = {code: n for code, n in answers["statuses"].items() if code != "200"}
        if non_200:
            problems.append(f"non-200 answers: {non_200}")
        distinct = len(workload.expected)
        return Result(
            backend=backend, posts=len(workload.bodies), distinct_events=distinct,
            duplicate_events=workload.duplicate_events, events_per_s=distinct / answers["wall"],
            p50_ms=percentile(latencies, 0.50) * 1000, p99_ms=percentile(latencies, 0.99) * 1000,
            max_ms=max(latencies) * 1000, wall_s=answers["wall"], non_200=non_200,
            server_cpu_s=server_cpu, client_cpu_s=answers["cpu"], durability=durability(inbox),
            exactly_once=not problems, problems=problems,
        )


def report(results: list[Result], skipped: dict[str, str], args: argparse.Namespace) -> dict:
    by_backend = {r.backend: r for r in results}
    sqlite, postgres = by_backend.get("sqlite"), by_backend.get("postgres")
    ratio = postgres.events_per_s / sqlite.events_per_s if sqlite and postgres else None
    met = (sqlite.events_per_s >= TARGET_EVENTS_PER_S and sqlite.p99_ms < TARGET_P99_MS
           and sqlite.exactly_once) if sqlite else None
    return {
        "events": args.events, "concurrency": args.concurrency, "batch": args.batch, "client": args.client,
        "cpus": os.cpu_count(),
        "results": [asdict(r) for r in results], "postgres_over_sqlite_throughput": ratio,
        "target": TARGET, "target_met": met, "skipped": skipped,
        "note": "the load generator runs on the same machine and competes with the receiver for the same cores",
    }


def print_table(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 120)
    table = Table(title=f"receiver: {summary['events']} events sent, batch {summary['batch']}, concurrency "
                        f"{summary['concurrency']}, {summary['client']} client, {summary['cpus']} cores")
    for column in ("backend", "posts", "distinct events", "duplicates", "events/s", "p50 ms", "p99 ms",
                   "exactly-once OK"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for r in summary["results"]:
        table.add_row(r["backend"], str(r["posts"]), str(r["distinct_events"]), str(r["duplicate_events"]),
                      f"{r['events_per_s']:,.0f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}",
                      "[green]yes[/]" if r["exactly_once"] else "[bold red]NO[/]")
    console.print(table)
    for r in summary["results"]:
        console.print(f"{r['backend']}: {r['posts'] / r['wall_s']:,.0f} POSTs/s, wall {r['wall_s']:.2f} s, "
                      f"max {r['max_ms']:.1f} ms, CPU receiver {r['server_cpu_s']:.1f} s "
                      f"({r['server_cpu_s'] / r['posts'] * 1000:.2f} ms/POST) / client {r['client_cpu_s']:.1f} s; "
                      f"{r['durability']}")
        for problem in r["problems"]:
            console.print(f"[bold red]{r['backend']}: {problem}[/]")
    if summary["postgres_over_sqlite_throughput"] is not None:
        console.print(f"postgres / sqlite throughput: {summary['postgres_over_sqlite_throughput']:.2f}")
    if summary["target_met"] is not None:
        verdict = "[green]met[/]" if summary["target_met"] else "[bold red]NOT met[/]"
        console.print(f"{summary['target']}: {verdict}")
    for backend, reason in summary["skipped"].items():
        console.print(f"[yellow]{backend} skipped: {reason}[/]")
    console.print(f"note: {summary['note']}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000, help="events sent, duplicates included")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent client connections")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--batch", type=int, default=1, help="events per POST")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="load generator: minimal asyncio HTTP/1.1 (default) or httpx.AsyncClient")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--latency-samples", type=int, default=3,
                        help="objects timed from put_object to run launch and materialization (0: skip)")
    args = parser.parse_args(argv)
    if args.events < 1 or args.concurrency < 1 or args.batch < 1:
        parser.error("--events, --concurrency and --batch must be at least 1")
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
    results = [run_backend(backend, workload, args.concurrency, args.client) for backend in backends]
    summary = report(results, skipped, args)
    pipeline = latency.measure(args.latency_samples) if args.latency_samples else []
    if args.json:
        print(json.dumps({**summary, "pipeline_latency_s": pipeline}, indent=2, ensure_ascii=False))
    else:
        print_table(summary)
        if pipeline:
            latency.report(pipeline, Settings().sensor_interval_s)
    if not all(r.exactly_once for r in results):
        print("FAILED: the inbox does not hold every distinct event exactly once", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
