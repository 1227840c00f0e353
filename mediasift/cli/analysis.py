"""What the analyses found: duplicate groups, clusters, anomalies, flags and labels (DESIGN §10). Each command
shows the analysis assets' latest Parquet output when there is one (the title says which and when), and
computes the view from the object table otherwise. With `--as-of SNAPSHOT` the view is computed from the
object table (and feature rows) as the snapshot kept them, its versions only: the assets' outputs describe
the current bucket, so they are never read then."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Column, Table

from mediasift.analysis import views
from mediasift.analysis.anomalies import THRESHOLD
from mediasift.analysis.duplicates import duplicates_json
from mediasift.analysis.taxonomy import Taxonomy, load_taxonomy
from mediasift.cli.app import JsonOption, app, console, fail, load_settings
from mediasift.config import Settings
from mediasift.store.parquet import FeatureTables

if TYPE_CHECKING:
    import polars as pl

TAXONOMY_ENV = "MEDIASIFT_TAXONOMY"
EMPTY = "the object table is empty: nothing is indexed yet (mediasift ingest PATH…)"
COMPUTED = "computed now from the object table"


class Space(StrEnum):
    VISUAL = "visual"
    TEXT = "text"


TaxonomyOption = Annotated[Path | None, typer.Option(
    "--taxonomy", envvar=TAXONOMY_ENV, help="Taxonomy YAML (labels and rules).", show_default=False)]
AsOfOption = Annotated[str | None, typer.Option(
    "--as-of", metavar="SNAPSHOT", show_default=False,
    help="Computed now from the object table as the snapshot kept it (its object versions only).")]


@dataclass(frozen=True)
class Inputs:
    """What a view reads: the object table and feature tables now, or as snapshot `as_of` kept them; the
    analysis assets' outputs only now (they describe the current bucket)."""

    objects: pl.DataFrame
    tables: FeatureTables
    analysis: Path
    as_of: str | None = None

    def stored(self, read, *args):
        """The assets' output `read` finds (None before the assets ran), never as of a snapshot."""
        return None if self.as_of else read(self.analysis, *args)

    def where(self, path: Path) -> str:
        return COMPUTED if self.as_of else _where(path)

    def title(self, text: str) -> str:
        return text if self.as_of is None else f"{text} as of snapshot {self.as_of}"

    def show(self, report: dict, as_json: bool, table: Table) -> None:
        if as_json:
            console.print_json(json.dumps(report if self.as_of is None else {"as_of": self.as_of, **report}))
        elif not len(self.objects):
            console.print(EMPTY if self.as_of is None else f"snapshot {self.as_of} held no indexed object")
        else:
            console.print(table)


def _inputs(settings: Settings, as_of: str | None) -> Inputs:
    analysis = views.analysis_dir(settings.derived_path)
    if as_of is None:
        return Inputs(views.load_objects(settings.derived_path), FeatureTables(settings.derived_path), analysis)
    from mediasift.snapshots import SnapshotError, Snapshots
    from mediasift.snapshots.diff import snapshot_side

    try:
        side = snapshot_side(Snapshots(settings), as_of)
    except SnapshotError as error:
        fail(str(error))
    return Inputs(side.object_table(), side.tables, analysis, as_of)


def _where(path: Path) -> str:
    """Which output a view is read from: the assets' file, or none yet (then the view is computed)."""
    if not path.exists():
        return COMPUTED
    written = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")
    return f"from {path.parent.name}/{path.name}, written {written}"


def _ref(ref: dict) -> str:
    return f"s3://{ref['bucket']}/{ref['key']}"


def _object() -> Column:
    return Column("object", overflow="fold")


def _time(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S")


@app.command()
def duplicates(as_json: JsonOption = False, as_of: AsOfOption = None) -> None:
    """Groups of exact (same sha256) and near copies, each member with why it matched its representative."""
    got = _inputs(load_settings(wait_for_stack=0), as_of)
    source, groups = got.where(got.analysis / views.DUPLICATES), got.stored(views.read_duplicates)
    if groups is None:
        groups = views.duplicate_view(got.objects).groups
    report = duplicates_json(groups)
    table = Table("group", "kind", _object(), "reason", title=got.title(f"duplicate groups ({source})"),
                  title_justify="left")
    for number, group in enumerate(report["groups"], 1):
        for member in group["members"]:
            table.add_row(str(number), group["kind"], _ref(member), member["reason"] or "representative")
    got.show(report, as_json, table)


@app.command()
def clusters(space: Annotated[Space, typer.Option(help="Which embedding space.")] = Space.VISUAL,
             taxonomy: TaxonomyOption = None, as_json: JsonOption = False, as_of: AsOfOption = None) -> None:
    """Clusters of similar objects with representatives and keywords, the noise, and (with a taxonomy) the
    gaps: labels with few objects and clusters no label describes."""
    settings = load_settings(wait_for_stack=0)
    got = _inputs(settings, as_of)
    source = got.where(views.clusters_path(got.analysis, space))
    clustering = got.stored(views.read_clusters, space.value)
    if clustering is None:
        clustering = _cluster_now(settings, got, space.value, taxonomy)
    report = clustering.as_json()
    table = Table("cluster", "size", "label", "keywords", Column("representatives", overflow="fold"),
                  title=got.title(f"{space.value} clusters ({source}); {len(report['noise'])} noise"),
                  title_justify="left")
    for c in report["clusters"]:
        table.add_row(c["id"], str(c["size"]), c["label"] or "-", ", ".join(c["keywords"]),
                      "\n".join(_ref(r) for r in c["representatives"]))
    got.show(report, as_json, table)
    if not as_json and report["gaps"]:
        for gap in report["gaps"]:
            console.print(f"gap: {gap['reason']}")


def _cluster_now(settings: Settings, got: Inputs, space: str, path: Path | None):
    taxonomy = load_taxonomy(path) if path else None
    labels = _classified(settings, got, taxonomy)[0].labels(taxonomy.classify.unassigned) if taxonomy else None
    return views.cluster_view(got.objects, space, got.stored(views.previous_membership, space), taxonomy, labels)[0]


@app.command()
def anomalies(show_all: Annotated[bool, typer.Option("--all", help="Every scored object, not only flagged.")] = False,
              threshold: Annotated[float, typer.Option(help="Flag scores above this.")] = THRESHOLD,
              as_json: JsonOption = False, as_of: AsOfOption = None) -> None:
    """Objects by anomaly score, highest first: how unusual each is against the rest (a percentile)."""
    got = _inputs(load_settings(wait_for_stack=0), as_of)
    source, history = got.where(got.analysis / views.HISTORY), got.stored(views.read_history)
    if history is None:
        history = [s for space in views.SPACES for s in views.rescore_view(got.objects, space).scores]
    report = views.anomaly_view(got.objects, history, threshold, show_all)
    table = Table("score", "flagged", _object(), "scored at (UTC)",
                  title=got.title(f"anomalies over {threshold} ({source})"), title_justify="left")
    for o in report["objects"]:
        table.add_row("-" if o["score"] is None else f"{o['score']:.3f}", "yes" if o["flagged"] else "",
                      _ref(o), _time(o["scored_at"]))
    got.show(report, as_json, table)


@app.command()
def flags(taxonomy: TaxonomyOption = None, as_json: JsonOption = False, as_of: AsOfOption = None) -> None:
    """Objects the taxonomy's rules flag, with the rule, what tripped it, and when it was first raised: the
    analysis assets' flags, and those raised at arrival since (each object's own run evaluates the rules)."""
    got = _inputs(load_settings(wait_for_stack=0), as_of)
    source, raised = got.where(got.analysis / views.FLAGS), got.stored(views.read_flags)
    if raised is None and taxonomy is not None:
        raised = _flag_now(got, taxonomy)
    elif raised is None:
        source, raised = "raised at arrival", []
    known = {f.flag.id for f in raised}
    raised += [f for f in views.arrival_flags(got.objects) if f.flag.id not in known]
    report = views.flags_json(raised)
    table = Table("rule", _object(), Column("reason", overflow="fold", ratio=1), "first raised (UTC)",
                  title=got.title(f"flags ({source})"), title_justify="left")
    for f in report["flags"]:
        table.add_row(f["rule"], _ref(f), f["reason"], _time(f["at"]))
    got.show(report, as_json, table)


def _flag_now(got: Inputs, path: Path) -> list[views.RaisedFlag]:
    scores = views.current_scores(got.objects, got.stored(views.read_history) or [])
    text = views.layer_text(got.tables, set(got.objects["version_hash"].to_list()))
    return views.flag_view(got.objects, load_taxonomy(path).rules, scores, text)


@app.command()
def classify(taxonomy: Annotated[Path, typer.Option(help="Taxonomy YAML whose labels to apply.")],
             as_json: JsonOption = False, as_of: AsOfOption = None) -> None:
    """Each object's labels under a taxonomy, best first (`unassigned` when none fits)."""
    settings = load_settings(wait_for_stack=0)
    got = _inputs(settings, as_of)
    classified, source = _classified(settings, got, load_taxonomy(taxonomy))
    report = classified.as_json()
    table = Table(_object(), "labels", title=got.title(f"labels of {taxonomy.name} ({source})"), title_justify="left")
    for o in report["objects"]:
        table.add_row(_ref(o), ", ".join(s["label"] if s["score"] is None else f"{s['label']} ({s['score']:.2f})"
                                         for s in o["labels"]))
    got.show(report, as_json, table)


def _classified(settings: Settings, got: Inputs, taxonomy: Taxonomy) -> tuple[views.Classified, str]:
    """The assets' labels when they are this taxonomy over these objects; else classified now."""
    stored = got.stored(views.read_classifications)
    if views.is_classified(stored, got.objects, taxonomy):
        return stored, got.where(got.analysis / views.CLASSIFICATIONS)
    text = views.layer_text(got.tables, set(got.objects["version_hash"].to_list()))
    return views.classify_view(got.objects, taxonomy, views.LazyTextEncoder(settings.device), text), COMPUTED
