"""The Dagster UI's asset page for `mediasift/source_object` at 1k, 10k and 100k object-version partitions.

    python bench/partitions.py [--sizes 1000,10000,100000] [--materialized-share 0.1] [--repeats 3]
                               [--no-http] [--json]

Why: every object version is a partition of `object_versions` (a DynamicPartitionsDefinition), so a
bucket's size is the asset's partition count. Dagster advises at most 100k partitions per asset and its
UI is known to struggle from about 40k; this measures where mediasift's own asset page stands, to know
when the batch-partition mode (a partition per inbox sequence range) is needed.

What is measured: the GraphQL documents the UI's asset page sends for a partitioned asset, taken verbatim
(with their fragments) from the installed dagster-webserver's JavaScript bundle, so they change with the
installed UI: the definition (AssetViewDefinitionQuery), live data with partition stats and the latest
materialization (AssetGraphLiveQuery), asset health (AssetHealthQuery), the overview's latest metadata
(AssetOverviewMetadataEventsQuery), the partition health bar and the Partitions tab's list, every key
with its status (PartitionHealthQuery), and one partition's detail (AssetPartitionDetailQuery). `page` is
their sum: the UI sends them concurrently, so it is an upper bound of what a browser waits for.

Setup: a throwaway DagsterInstance (DAGSTER_HOME in a temp dir, under /dev/shm where there is one; SQLite
storage) and the real code
location (`dagster_project.definitions`, loaded in a gRPC code server as the webserver does). Partition
keys are version hashes of synthetic object versions, added with `instance.add_dynamic_partitions` (what
the inbox sensor's `dynamic_partitions_requests` do); a share of them, spread evenly, get a materialization
of `mediasift/source_object` with the metadata a real one carries, reported one by one with
`instance.report_runless_asset_event` (what the UI's "report materialization" does; Dagster's SQLite
event log has no bulk path: about 25 ms an event here, so 100k at 10% takes minutes to set up). Sizes
grow one instance: the 10k row is the 1k row plus 9k partitions.

Each query runs in-process through dagster_graphql (`execute_dagster_graphql`, a fresh request context
per call, as the webserver makes one per request) and, unless --no-http, over HTTP against
`dagster-webserver` on 127.0.0.1 (started in its own process group and stopped with it). `first` is the
first call after the partitions changed (Dagster's asset status cache is stale then), `median` the median
of --repeats calls after it. Times are wall clock on a shared machine; the ratio to the smallest size's
row is the comparable number.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import dagster as dg
import dagster_webserver
import httpx
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import ModuleTarget
from dagster_graphql.test.utils import execute_dagster_graphql
from rich.console import Console
from rich.table import Table

from assets.source import SOURCE
from dagster_project.partitions import object_versions
from mediasift.identity import ObjectVersion

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = Path(dagster_webserver.__file__).parent / "webapp" / "build" / "_next"
PAGE_QUERIES = ("AssetViewDefinitionQuery", "AssetGraphLiveQuery", "AssetHealthQuery",
                "AssetOverviewMetadataEventsQuery", "PartitionHealthQuery", "AssetPartitionDetailQuery")
DAGSTER_ADVICE = "Dagster's advice: at most 100,000 partitions per asset; its UI struggles from about 40,000."


@dataclass
class Row:
    partitions: int
    materialized: int
    via: str
    query: str
    first_s: float
    median_s: float
    response_kib: float


def ui_queries(names: tuple[str, ...] = PAGE_QUERIES) -> dict[str, str]:
    """The UI's GraphQL documents by operation name, each with the fragments it spreads, from the bundle."""
    text = "\n".join(path.read_text(errors="ignore") for path in BUNDLE.rglob("*.js")).replace("\\n", "\n")
    fragments: dict[str, str] = {}
    for match in re.finditer(r"fragment (\w+) on \w+ \{", text):
        fragments.setdefault(match.group(1), _braced(text, match.start()))
    documents = {}
    for name in names:
        match = re.search(rf"query {name}\(", text)
        if match is None:
            raise SystemExit(f"the UI bundle under {BUNDLE} has no query {name}: the installed dagster-webserver "
                             "changed its asset page; update PAGE_QUERIES")
        body = _braced(text, match.start())
        spread, pending = [], [body]
        while pending:
            for fragment in re.findall(r"\.\.\.(\w+)", pending.pop()):
                if fragment not in spread:
                    spread.append(fragment)
                    pending.append(fragments[fragment])
        documents[name] = "\n".join([body, *(fragments[f] for f in spread)])
    return documents


def _braced(text: str, start: int) -> str:
    """text from `start` to the brace that closes the first one opened after it."""
    depth = 0
    for end in range(text.index("{", start), len(text)):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if depth == 0:
            return text[start:end + 1]
    raise ValueError(f"unbalanced braces after offset {start}")


def variables(name: str, partition: str) -> dict:
    key = {"path": SOURCE.path}
    if name in ("AssetGraphLiveQuery", "AssetHealthQuery"):
        return {"assetKeys": [key]}
    if name == "AssetPartitionDetailQuery":
        return {"assetKey": key, "partitionKey": partition}
    return {"assetKey": key}


def version(i: int) -> ObjectVersion:
    return ObjectVersion("bench", f"objects/{i:07d}.mp4", f"{i:032x}", size=1_000_000 + i, content_type="video/mp4")


def is_materialized(i: int, share: float) -> bool:
    """Exactly floor(n × share) of the first n partitions, spread evenly."""
    return int((i + 1) * share) > int(i * share)


def grow(instance: dg.DagsterInstance, start: int, stop: int, share: float) -> int:
    """Adds partitions start..stop-1 and materializes their share; returns how many it materialized."""
    versions = [version(i) for i in range(start, stop)]
    instance.add_dynamic_partitions(object_versions.name, [v.version_hash for v in versions])
    count = 0
    for i, v in enumerate(versions, start):
        if is_materialized(i, share):
            instance.report_runless_asset_event(dg.AssetMaterialization(
                SOURCE, partition=v.version_hash,
                metadata={**v.lineage(), "uri": v.uri, "state": "extracted", "size": v.size,
                          "content_type": v.content_type}))
            count += 1
    return count


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def webserver(home: Path) -> Iterator[str]:
    """dagster-webserver on a free 127.0.0.1 port over the bench's instance, in its own process group."""
    port = free_port()
    log = (home / "webserver.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(port), "-m",
         "dagster_project.definitions"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dagster-webserver did not come up on {url}; see {home / 'webserver.log'}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def in_process(context: WorkspaceProcessContext) -> Callable[[str, str, dict], int]:
    def run(name: str, document: str, values: dict) -> int:
        result = execute_dagster_graphql(context.create_request_context(), document, values)
        if result.errors:
            raise RuntimeError(f"{name}: {result.errors}")
        return len(json.dumps(result.data))
    return run


def over_http(client: httpx.Client, url: str) -> Callable[[str, str, dict], int]:
    def run(name: str, document: str, values: dict) -> int:
        response = client.post(f"{url}/graphql", json={"operationName": name, "query": document,
                                                       "variables": values})
        response.raise_for_status()
        if response.json().get("errors"):
            raise RuntimeError(f"{name}: {response.json()['errors']}")
        return len(response.content)
    return run


def measure(run: Callable[[str, str, dict], int], documents: dict[str, str], partition: str, repeats: int,
            size: int, materialized: int, via: str) -> list[Row]:
    rows = []
    for name, document in documents.items():
        spent = []
        for _ in range(repeats + 1):
            started = time.perf_counter()
            size_bytes = run(name, document, variables(name, partition))
            spent.append(time.perf_counter() - started)
        rows.append(Row(size, materialized, via, name, spent[0], statistics.median(spent[1:]), size_bytes / 1024))
    rows.append(Row(size, materialized, via, "page", sum(r.first_s for r in rows),
                    sum(r.median_s for r in rows), sum(r.response_kib for r in rows)))
    return rows


def print_table(rows: list[Row], repeats: int, console: Console) -> None:
    smallest = {(r.via, r.query): r.median_s for r in rows if r.partitions == rows[0].partitions}
    table = Table("partitions", "materialized", "via", "query", "first s", f"median s ({repeats})", "×smallest",
                  "response KiB", title="Dagster UI asset page, mediasift/source_object (SQLite instance)")
    for row in rows:
        table.add_row(f"{row.partitions:,}", f"{row.materialized:,}", row.via, row.query, f"{row.first_s:.3f}",
                      f"{row.median_s:.3f}", f"{row.median_s / smallest[(row.via, row.query)]:.1f}×",
                      f"{row.response_kib:,.1f}", end_section=row.query == "page")
    console.print(table)
    console.print(DAGSTER_ADVICE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated partition counts")
    parser.add_argument("--materialized-share", type=float, default=0.1,
                        help="share of partitions with a materialization (0 to 1)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-http", action="store_true", help="in-process GraphQL only, no dagster-webserver")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if not 0 <= args.materialized_share <= 1:
        parser.error("--materialized-share is a share, between 0 and 1")
    if args.repeats < 1 or sizes[0] < 1:
        parser.error("--repeats and every size must be at least 1")
    documents = ui_queries()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-partitions-", dir=_memory_backed()) as folder:
        home = Path(folder)
        os.environ.update(DAGSTER_HOME=str(home), MEDIASIFT_HOME=str(home / "mediasift"))
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        with _stdout_to_stderr(), dg.DagsterInstance.get() as instance, \
                WorkspaceProcessContext(instance, ModuleTarget("dagster_project.definitions", "defs", str(ROOT),
                                                               "mediasift")) as context, \
                (webserver(home) if not args.no_http else _nothing()) as url, httpx.Client(timeout=600) as client:
            done = materialized = 0
            for size in sizes:
                started = time.perf_counter()
                materialized += grow(instance, done, size, args.materialized_share)
                print(f"{size:,} partitions, {materialized:,} materialized: set up in "
                      f"{time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
                done, partition = size, version(size - 1).version_hash
                rows += measure(in_process(context), documents, partition, args.repeats, size, materialized,
                                "in-process")
                if url:
                    rows += measure(over_http(client, url), documents, partition, args.repeats, size,
                                    materialized, "http")
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
    print_table(rows, args.repeats, Console(file=sys.stderr if args.json else None, width=160))


def _memory_backed() -> str | None:
    """/dev/shm where there is one: SQLite's commit per reported event costs half as much without a disk."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """The code server the workspace starts logs to its inherited stdout; keep that for the table or JSON."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


if __name__ == "__main__":
    main()
