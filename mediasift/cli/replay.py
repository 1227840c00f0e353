"""`mediasift replay` and `mediasift diff`: a snapshot's versions re-materialised into a namespace, and two
snapshots, namespaces or the live index compared."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.console import Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from mediasift.cli.app import JsonOption, app, console, err, fail, load_settings
from mediasift.cli.backfill import BackfillError, DagsterWebserver
from mediasift.config import Settings
from mediasift.extraction.layers.rows import LAYERS
from mediasift.identity import PARTITIONS
from mediasift.run.versions import VersionResult
from mediasift.snapshots import SnapshotError
from mediasift.snapshots.diff import diff as compare
from mediasift.snapshots.diff import resolve
from mediasift.snapshots.replay import (
    NAMESPACE_TAG,
    NOT_REPLAYED,
    REPLAYED_ASSET,
    SNAPSHOT_TAG,
    Replay,
    ReplayPlan,
    count_states,
)

BACKFILL_POLL_S = 1.0


@app.command()
def replay(
    snapshot: Annotated[str, typer.Option("--snapshot", help="The snapshot whose object versions to replay.")],
    into: Annotated[str, typer.Option("--into", help="The namespace to fill (made if new; resumed if it holds "
                                      "this snapshot already).")],
    backfill: Annotated[bool, typer.Option("--backfill", help="Submit the versions left to replay as a Dagster "
                                           "backfill of mediasift/replayed_version, run by the stack's daemon and "
                                           "followed in the UI, instead of replaying here.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="With --backfill: follow the backfill until it ends, and "
                                       "fail unless it succeeded.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Re-materialise exactly a snapshot's object versions into a namespace of its own (feature tables, Lance
    tables, inbox under <derived>/namespaces/NAME/), through the ingest run path; the live index is untouched."""
    if wait and not backfill:
        fail("--wait follows a backfill: pass --backfill too (without it, replay runs here and waits anyway)")
    settings = load_settings()
    runner = Replay(settings)
    try:
        plan = runner.plan(snapshot, into)
        if backfill:
            _backfill(settings, plan, wait, as_json)
            return
        results = _run(runner, plan, show=not as_json)
    except SnapshotError as error:
        fail(str(error))
    summary = _summary(plan, results)
    if as_json:
        console.print_json(json.dumps(summary))
        return
    console.print(_summary_table(summary))
    if summary["failed"]:
        fail(f"{len(summary['failed'])} versions did not replay; run the same command again to retry them")


def _backfill(settings: Settings, plan: ReplayPlan, wait: bool, as_json: bool) -> None:
    """Submit the plan's pending versions as one asset backfill through the stack's Dagster webserver (the
    daemon launches its runs), say where to watch it, and with `wait` follow it to its end."""
    url = settings.stack_info().get("dagster_url")
    if not url:
        fail("--backfill submits through the Dagster webserver, and none is running under MEDIASIFT_HOME: start "
             "the stack with `mediasift up` (or replay here, without --backfill)")
    webserver = DagsterWebserver(url)
    answer: dict = {"backfill_id": None, "partitions": plan.pending, "namespace": plan.namespace.name,
                    "snapshot": plan.snapshot.name}
    try:
        if plan.pending:
            answer["backfill_id"] = webserver.launch(
                REPLAYED_ASSET, PARTITIONS, plan.pending,
                {SNAPSHOT_TAG: plan.snapshot.name, NAMESPACE_TAG: plan.namespace.name},
                title=f"replay {plan.snapshot.name} into {plan.namespace.name}",
                description=f"mediasift replay --snapshot {plan.snapshot.name} --into {plan.namespace.name} --backfill")
        where = f"{url}/runs/b/{answer['backfill_id']}"
        if not as_json:
            console.print(f"backfill {answer['backfill_id']}: {len(plan.pending)} versions of {plan.snapshot.name} "
                          f"into {plan.namespace.name}; watch it at {where}" if plan.pending else
                          f"nothing to replay: namespace {plan.namespace.name} holds every version of "
                          f"{plan.snapshot.name} already")
        status = "COMPLETED_SUCCESS"
        if wait and answer["backfill_id"]:
            status = answer["status"] = _follow(webserver, answer["backfill_id"], len(plan.pending),
                                                show=not as_json)
    except BackfillError as error:
        fail(f"the backfill was not submitted or followed: {error}")
    if as_json:
        console.print_json(json.dumps(answer))
    if status != "COMPLETED_SUCCESS":
        fail(f"backfill {answer['backfill_id']} ended {status}; see {where}, then run the same command again to "
             "replay what is left")


def _follow(webserver: DagsterWebserver, backfill_id: str, total: int, show: bool) -> str:
    """Poll the backfill until it ends, with a bar of the partitions it materialized so far."""
    with Progress(TextColumn(f"backfill {backfill_id}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=err, disable=not show) as progress:
        task = progress.add_task("backfill", total=total, status="")
        while not (state := webserver.state(backfill_id)).ended:
            progress.update(task, completed=state.materialized, status=state.status.lower())
            time.sleep(BACKFILL_POLL_S)
        progress.update(task, completed=state.materialized, status=state.status.lower())
        return state.status


def _run(runner: Replay, plan: ReplayPlan, show: bool) -> list[VersionResult]:
    results = []
    with Progress(TextColumn(f"replaying {plan.snapshot.name} into {plan.namespace.name}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=err, disable=not show) as progress:
        task = progress.add_task("replay", total=len(plan.pending))
        for result in runner.run(plan):
            results.append(result)
            progress.advance(task)
    return results


def _summary(plan: ReplayPlan, results: list[VersionResult]) -> dict:
    """What `replay --json` prints: the namespace's paths, what this replay ran, and what the namespace holds."""
    namespace = plan.namespace
    rows = dict.fromkeys(LAYERS, 0)
    for result in results:
        for layer, count in result.rows.items():
            rows[layer] += count
    not_replayed = [r for r in results if r.state in NOT_REPLAYED]
    record = namespace.get()
    return {
        "namespace": namespace.name, "snapshot": plan.snapshot.name, "bucket": plan.snapshot.bucket,
        "derived_dir": str(namespace.derived_dir), "lance_uri": namespace.lance_uri,
        "versions": len(plan.versions), "ran": len(results), "skipped": len(plan.versions) - len(plan.pending),
        "states": count_states(r.state for r in results), "rows": rows, "namespace_states": record.states,
        "failed": [{"key": r.version.key, "etag": r.version.etag, "version_id": r.version.version_id,
                    "state": r.state.value, "reason": r.reason} for r in not_replayed],
    }


def _summary_table(summary: dict) -> Table:
    table = Table(show_header=False, title=f"replay of {summary['snapshot']} into {summary['namespace']}",
                  title_justify="left")
    table.add_row("versions", f"{summary['versions']} ({summary['ran']} run, {summary['skipped']} done before)")
    table.add_row("this run", ", ".join(f"{n} {s}" for s, n in summary["states"].items()) or "-")
    table.add_row("rows", ", ".join(f"{layer} {n}" for layer, n in summary["rows"].items()))
    table.add_row("feature tables", summary["derived_dir"])
    table.add_row("index", summary["lance_uri"])
    for failure in summary["failed"]:
        table.add_row(f"[red]{failure['state']}[/red]",
                      f"{failure['key']} (etag {failure['etag']}): {failure['reason']}")
    return table


@app.command("diff")
def diff_command(
    a: Annotated[str, typer.Argument(help="A snapshot, a namespace (`snapshot:NAME`/`namespace:NAME` when a name "
                                     "is both), or `live`.")],
    b: Annotated[str, typer.Argument(help="The other side, as A.")],
    query: Annotated[list[str] | None, typer.Option("--query", "-q", help="Show this query's top hits on each "
                                                    "side (repeatable).")] = None,
    k: Annotated[int, typer.Option("-k", help="Hits per query and side.")] = 5,
    as_json: JsonOption = False,
) -> None:
    """Objects added, removed and changed from A to B, rows per layer on each side, and top hits side by side."""
    settings = load_settings()
    try:
        sides = resolve(settings, a), resolve(settings, b)
        models = None
        if query:
            from mediasift.extraction.models import models_for

            models = models_for(settings)
        answer = compare(*sides, queries=query or [], k=k, models=models)
    except SnapshotError as error:
        fail(str(error))
    if as_json:
        console.print_json(json.dumps(answer))
        return
    console.print(Group(_objects_table(answer), _rows_table(answer), *_hits_tables(answer)))


def _label(side: dict) -> str:
    return f"{side['name']} ({side['kind']}, {side['objects']} objects)"


def _objects_table(answer: dict) -> Table | str:
    objects = answer["objects"]
    title = f"{_label(answer['a'])} → {_label(answer['b'])}: {objects['unchanged']} unchanged"
    table = Table("change", Column("key", overflow="fold"), "A", "B", title=title, title_justify="left")
    for item in objects["added"]:
        table.add_row("[green]added[/green]", item["key"], "-", _held(item))
    for item in objects["removed"]:
        table.add_row("[red]removed[/red]", item["key"], _held(item), "-")
    for item in objects["changed"]:
        table.add_row("[yellow]changed[/yellow]", item["key"], _held(item["a"]), _held(item["b"]))
    return table if table.row_count else title + "; nothing added, removed or changed"


def _held(held: dict) -> str:
    return held["etag"] + (f" v={held['version_id']}" if held["version_id"] else "")


def _rows_table(answer: dict) -> Table:
    table = Table("layer", "A features", "A index", "B features", "B index", title="rows per layer",
                  title_justify="left")
    for layer, sides in answer["rows"].items():
        table.add_row(layer, *(str(sides[s][c]) for s in ("a", "b") for c in ("features", "index")))
    return table


def _hits_tables(answer: dict) -> list[Table]:
    tables = []
    for item in answer["queries"]:
        table = Table("#", Column(f"A: {answer['a']['name']}", ratio=1), Column(f"B: {answer['b']['name']}", ratio=1),
                      title=f"top hits: {item['query']}", title_justify="left")
        for i in range(max(len(item["a"]), len(item["b"]))):
            table.add_row(str(i + 1), *(_hit(hits[i]) if i < len(hits) else "" for hits in (item["a"], item["b"])))
        tables.append(table)
    return tables


def _hit(hit: dict) -> str:
    where = f" p{hit['page']}" if hit["page"] is not None else (
        f" {hit['t_start']:.1f}s" if hit["t_start"] is not None else "")
    return f"{hit['key']}{where} [{hit['layer']}] {hit['score']:.3f} {hit['etag'][:8]}"
