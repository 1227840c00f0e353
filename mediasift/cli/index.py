"""`mediasift index use|show`: cut search over to a replayed namespace, and back to the live index."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Group
from rich.table import Column, Table

from mediasift.cli.app import JsonOption, app, console, err, fail, load_settings
from mediasift.config import Settings
from mediasift.query.active_index import ActiveIndex, IndexChoiceError, active_index, index_file, unfinished, use
from mediasift.snapshots import SnapshotError
from mediasift.snapshots.namespace import LIVE, RECORD_FILE, Namespace, namespaces_root

index_app = typer.Typer(help="Which index search reads: the live one or a replayed namespace. Ingest always "
                             "writes the live index.", no_args_is_help=True)
app.add_typer(index_app, name="index")


@index_app.command("use")
def use_command(
    name: Annotated[str, typer.Argument(help="A namespace `mediasift replay --into` filled, or `live` to roll "
                                        "back.", show_default=False)],
    as_json: JsonOption = False,
) -> None:
    """Cut search over to namespace NAME's index, or back to `live`.

    This CLI and the stack's /search read it from their next query. Ingest keeps writing the live index, so
    objects uploaded since the namespace's snapshot are found again after `mediasift index use live`. A
    namespace whose replay is unfinished is refused."""
    settings = load_settings(wait_for_stack=0)
    try:
        active = use(settings, name)
    except (IndexChoiceError, SnapshotError) as error:
        fail(str(error))
    if as_json:
        console.print_json(json.dumps(active.to_json()))
        return
    console.print(f"search reads {_describe(active)}")
    if not active.is_live:
        err.print("ingest keeps writing the live index; `mediasift index use live` searches it again")


@index_app.command("show")
def show(as_json: JsonOption = False) -> None:
    """The index search reads now, and the namespaces it could read instead."""
    settings = load_settings(wait_for_stack=0)
    try:
        active = active_index(settings)
    except (IndexChoiceError, SnapshotError) as error:
        fail(str(error))
    candidates = _namespaces(settings, active)
    if as_json:
        console.print_json(json.dumps({"active": active.to_json(), "file": str(index_file(settings)),
                                       "namespaces": candidates}))
        return
    table = Table(Column("namespace", no_wrap=True), "snapshot", "versions", "ready", "in use",
                  title="namespaces", title_justify="left")
    for n in candidates:
        table.add_row(n["name"], n["snapshot"], str(n["versions"]), "yes" if n["ready"] else n["problem"],
                      "[green]yes[/green]" if n["active"] else "")
    console.print(Group(f"search reads {_describe(active)}",
                        table if candidates else "no namespaces (`mediasift replay --snapshot S --into NAME`)"))


def _describe(active: ActiveIndex) -> str:
    if active.is_live:
        return f"the {LIVE} index ({active.lance_uri})"
    return f"namespace {active.name} (snapshot {active.snapshot}, {active.lance_uri})"


def _namespaces(settings: Settings, active: ActiveIndex) -> list[dict]:
    """Every namespace under the derived folder, with whether `index use` would take it."""
    found = []
    root = namespaces_root(settings)
    for folder in sorted(root.iterdir()) if root.is_dir() else ():
        if not (folder / RECORD_FILE).is_file():
            continue
        record = Namespace.of(settings, folder.name).get()
        problem = unfinished(record)
        found.append({"name": record.name, "snapshot": record.snapshot, "bucket": record.bucket,
                      "versions": record.versions, "states": record.states, "ready": problem is None,
                      "problem": problem, "active": record.name == active.name})
    return found
