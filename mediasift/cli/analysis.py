"""What the analyses found: duplicate groups, clusters, anomalies, flags and labels (DESIGN §10). Each command
shows the analysis assets' latest Parquet output when there is one (the title says which and when), and
computes the view from the object table otherwise."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Column, Table

from mediasift.analysis import views
from mediasift.analysis.anomalies import THRESHOLD
from mediasift.analysis.duplicates import duplicates_json
from mediasift.analysis.taxonomy import Taxonomy, load_taxonomy
from mediasift.cli.app import JsonOption, app, console, load_settings
from mediasift.config import Settings
from mediasift.store.parquet import FeatureTables

TAXONOMY_ENV = "MEDIASIFT_TAXONOMY"
EMPTY = "the object table is empty: nothing is indexed yet (mediasift ingest PATH…)"
COMPUTED = "computed now from the object table"


class Space(StrEnum):
    VISUAL = "visual"
    TEXT = "text"


TaxonomyOption = Annotated[Path | None, typer.Option(
    "--taxonomy", envvar=TAXONOMY_ENV, help="Taxonomy YAML (labels and rules).", show_default=False)]


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


def _load(settings: Settings):
    return views.load_objects(settings.derived_path), views.analysis_dir(settings.derived_path)


def _show(report: dict, as_json: bool, table: Table | None, empty: bool) -> None:
    if as_json:
        console.print_json(json.dumps(report))
    elif empty:
        console.print(EMPTY)
    elif table is not None:
        console.print(table)


@app.command()
def duplicates(as_json: JsonOption = False) -> None:
    """Groups of exact (same sha256) and near copies, each member with why it matched its representative."""
    objects, analysis = _load(load_settings(wait_for_stack=0))
    source, groups = _where(analysis / views.DUPLICATES), views.read_duplicates(analysis)
    if groups is None:
        groups = views.duplicate_view(objects).groups
    report = duplicates_json(groups)
    table = Table("group", "kind", _object(), "reason", title=f"duplicate groups ({source})", title_justify="left")
    for number, group in enumerate(report["groups"], 1):
        for member in group["members"]:
            table.add_row(str(number), group["kind"], _ref(member), member["reason"] or "representative")
    _show(report, as_json, table, not len(objects))


@app.command()
def clusters(space: Annotated[Space, typer.Option(help="Which embedding space.")] = Space.VISUAL,
             taxonomy: TaxonomyOption = None, as_json: JsonOption = False) -> None:
    """Clusters of similar objects with representatives and keywords, the noise, and (with a taxonomy) the
    gaps: labels with few objects and clusters no label describes."""
    settings = load_settings(wait_for_stack=0)
    objects, analysis = _load(settings)
    source, clustering = _where(views.clusters_path(analysis, space)), views.read_clusters(analysis, space.value)
    if clustering is None:
        clustering = _cluster_now(settings, objects, analysis, space.value, taxonomy)
    report = clustering.as_json()
    table = Table("cluster", "size", "label", "keywords", Column("representatives", overflow="fold"),
                  title=f"{space.value} clusters ({source}); {len(report['noise'])} noise", title_justify="left")
    for c in report["clusters"]:
        table.add_row(c["id"], str(c["size"]), c["label"] or "-", ", ".join(c["keywords"]),
                      "\n".join(_ref(r) for r in c["representatives"]))
    _show(report, as_json, table, not len(objects))
    if not as_json and report["gaps"]:
        for gap in report["gaps"]:
            console.print(f"gap: {gap['reason']}")


def _cluster_now(settings: Settings, objects, analysis: Path, space: str, path: Path | None):
    taxonomy = load_taxonomy(path) if path else None
    labels = _classified(settings, objects, analysis, taxonomy)[0].labels(taxonomy.classify.unassigned) \
        if taxonomy else None
    return views.cluster_view(objects, space, views.previous_membership(analysis, space), taxonomy, labels)[0]


@app.command()
def anomalies(show_all: Annotated[bool, typer.Option("--all", help="Every scored object, not only flagged.")] = False,
              threshold: Annotated[float, typer.Option(help="Flag scores above this.")] = THRESHOLD,
              as_json: JsonOption = False) -> None:
    """Objects by anomaly score, highest first: how unusual each is against the rest (a percentile)."""
    objects, analysis = _load(load_settings(wait_for_stack=0))
    source, history = _where(analysis / views.HISTORY), views.read_history(analysis)
    if history is None:
        history = [s for space in views.SPACES for s in views.rescore_view(objects, space).scores]
    report = views.anomaly_view(objects, history, threshold, show_all)
    table = Table("score", "flagged", _object(), "scored at (UTC)",
                  title=f"anomalies over {threshold} ({source})", title_justify="left")
    for o in report["objects"]:
        table.add_row("-" if o["score"] is None else f"{o['score']:.3f}", "yes" if o["flagged"] else "",
                      _ref(o), _time(o["scored_at"]))
    _show(report, as_json, table, not len(objects))


@app.command()
def flags(taxonomy: TaxonomyOption = None, as_json: JsonOption = False) -> None:
    """Objects the taxonomy's rules flag, with the rule, what tripped it, and when it was first raised: the
    analysis assets' flags, and those raised at arrival since (each object's own run evaluates the rules)."""
    settings = load_settings(wait_for_stack=0)
    objects, analysis = _load(settings)
    source, raised = _where(analysis / views.FLAGS), views.read_flags(analysis)
    if raised is None and taxonomy is not None:
        raised = _flag_now(settings, objects, analysis, taxonomy)
    elif raised is None:
        source, raised = "raised at arrival", []
    known = {f.flag.id for f in raised}
    raised += [f for f in views.arrival_flags(objects) if f.flag.id not in known]
    report = views.flags_json(raised)
    table = Table("rule", _object(), Column("reason", overflow="fold", ratio=1), "first raised (UTC)",
                  title=f"flags ({source})", title_justify="left")
    for f in report["flags"]:
        table.add_row(f["rule"], _ref(f), f["reason"], _time(f["at"]))
    _show(report, as_json, table, not len(objects))


def _flag_now(settings: Settings, objects, analysis: Path, path: Path) -> list[views.RaisedFlag]:
    scores = views.current_scores(objects, views.read_history(analysis) or [])
    text = views.layer_text(FeatureTables(settings.derived_path), set(objects["version_hash"].to_list()))
    return views.flag_view(objects, load_taxonomy(path).rules, scores, text)


@app.command()
def classify(taxonomy: Annotated[Path, typer.Option(help="Taxonomy YAML whose labels to apply.")],
             as_json: JsonOption = False) -> None:
    """Each object's labels under a taxonomy, best first (`unassigned` when none fits)."""
    settings = load_settings(wait_for_stack=0)
    objects, analysis = _load(settings)
    classified, source = _classified(settings, objects, analysis, load_taxonomy(taxonomy))
    report = classified.as_json()
    table = Table(_object(), "labels", title=f"labels of {taxonomy.name} ({source})", title_justify="left")
    for o in report["objects"]:
        table.add_row(_ref(o), ", ".join(s["label"] if s["score"] is None else f"{s['label']} ({s['score']:.2f})"
                                         for s in o["labels"]))
    _show(report, as_json, table, not len(objects))


def _classified(settings: Settings, objects, analysis: Path, taxonomy: Taxonomy) -> tuple[views.Classified, str]:
    """The assets' labels when they are this taxonomy over the current objects; else classified now."""
    stored = views.read_classifications(analysis)
    if views.is_classified(stored, objects, taxonomy):
        return stored, _where(analysis / views.CLASSIFICATIONS)
    text = views.layer_text(FeatureTables(settings.derived_path), set(objects["version_hash"].to_list()))
    return views.classify_view(objects, taxonomy, views.LazyTextEncoder(settings.device), text), COMPUTED
