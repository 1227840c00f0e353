"""What the pipeline knows: counts per state, and every version of one object with its lineage."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from mediasift import metrics
from mediasift.cli.app import (
    JsonOption,
    app,
    console,
    fail,
    load_settings,
    objects_app,
)
from mediasift.config import Settings
from mediasift.extraction.layers import visual
from mediasift.extraction.models.clip import UNTRAINED, configured_name
from mediasift.identity import parse_s3_uri
from mediasift.inbox import Inbox, State
from mediasift.query.lineage import layer_counts, object_analysis, version_json
from mediasift.store.lance import LanceIndex
from mediasift.store.parquet import FeatureTables


@app.command()
def status(as_json: JsonOption = False) -> None:
    """Counts of object versions per state, the inbox depth and the endpoints in use."""
    settings = load_settings(wait_for_stack=0)
    inbox = Inbox(settings.inbox_url, read_only=True)
    stack = settings.stack_info()
    report = {
        "stack": stack["state"],
        **inbox.counts(),
        "inbox_depth": inbox.depth(),
        "last_event_seq": inbox.last_seq(),
        "visual": visual_model(settings),
        "runs": metrics.summary(metrics.metrics_dir(settings.home)),
        "endpoints": {
            "s3": settings.s3_endpoint_url,
            "bucket": settings.bucket,
            "receiver": stack.get("receiver_url"),
            "dagster": stack.get("dagster_url"),
            "ray": stack.get("ray_address") or (settings.ray if settings.ray != "off" else None),
            "inbox": inbox.engine.url.render_as_string(hide_password=True),
        },
    }
    if as_json:
        console.print_json(json.dumps(report))
        return
    table = Table("state", "versions", title="object versions")
    for state in [*(s.value for s in State), "dlq"]:
        table.add_row(state, str(report[state]))
    console.print(table)
    console.print(f"embedded stack: {report['stack']}")
    console.print(f"inbox depth {report['inbox_depth']}, last event seq {report['last_event_seq']}")
    console.print(runs_line(report["runs"]))
    shown = report["visual"]
    console.print(f"visual model: {shown['model']} ({shown['weights']} weights"
                  f"{'' if shown['trained'] else ', CLIP untrained'})")
    for name, value in report["endpoints"].items():
        console.print(f"{name:>9}: {value or '-'}")


def runs_line(runs: dict) -> str:
    """The runs' metrics in one line: outcomes, failures by reason, mean extraction seconds per layer."""
    outcomes = ", ".join(f"{n} {outcome}" for outcome, n in sorted(runs["runs"].items())) or "none yet"
    failures = ", ".join(f"{n} {reason}" for reason, n in sorted(runs["failures"].items()))
    layers = ", ".join(f"{layer} {v['mean']:.2f} s" for layer, v in sorted(runs["extraction_seconds"].items())
                       if v["mean"] is not None)
    return (f"runs: {outcomes}" + (f"; failed versions: {failures}" if failures else "")
            + (f"; mean extraction: {layers}" if layers else ""))


def visual_model(settings: Settings) -> dict:
    """The visual layer's extractor as rows name it; `trained` is false only for a random CLIP asked for."""
    clip = configured_name(settings.clip_model, settings.clip_pretrained, settings.clip_checkpoint)
    return {"model": visual.extractor(clip), "clip": clip, "weights": settings.visual_weights or "packaged",
            "trained": bool(settings.clip_checkpoint) or settings.clip_pretrained != UNTRAINED}


@objects_app.command("show")
def objects_show(uri: Annotated[str, typer.Argument(help="s3://BUCKET/KEY")], as_json: JsonOption = False,
                 as_of: Annotated[str | None, typer.Option(
                     "--as-of", metavar="SNAPSHOT", help="The version the snapshot held, its rows in the index "
                                                         "and the analysis as of the snapshot.")] = None) -> None:
    """Every known version of one object: state, ETag, lineage, and its rows in each layer."""
    try:
        bucket, key = parse_s3_uri(uri)
    except ValueError as error:
        fail(str(error))
    settings = load_settings(wait_for_stack=0)
    versions = Inbox(settings.inbox_url, read_only=True).versions_of(bucket, key)
    if not versions:
        fail(f"no version of {uri} is known to the inbox")
    index, tables = LanceIndex(settings.lance_location), FeatureTables(settings.derived_path)
    if as_of is not None:
        versions, index, tables = _as_of(settings, as_of, uri, key, versions)
    described = [{**version_json(v), "layers": layer_counts(index, v.version_hash),
                  "analysis": object_analysis(tables, v)} for v in versions]
    if as_json:
        console.print_json(json.dumps(described))
        return
    for facts in described:
        table = Table(show_header=False, title=f"{uri}  version {facts['partition_key']}", title_justify="left")
        for name in ("bucket", "key", "etag", "version_id", "object_id", "partition_key", "state", "attempts",
                     "size", "content_type", "sha256", "last_error"):
            value = facts[name]
            label = "reason" if name == "last_error" else name
            if name == "state" and facts["in_dlq"]:
                value = f"{value} (in DLQ)"
            table.add_row(label, "-" if value is None else str(value))
        table.add_row("layers", ", ".join(f"{layer} {n}" for layer, n in facts["layers"].items()))
        for name, value in _analysis_rows(facts["analysis"]):
            table.add_row(name, value)
        console.print(table)


def _as_of(settings: Settings, name: str, uri: str, key: str, versions: list) -> tuple[list, LanceIndex, FeatureTables]:
    """The version snapshot `name` held (its inbox record, current state), the index at the snapshot's tag and
    the feature tables it kept."""
    from mediasift.snapshots import SnapshotError, Snapshots
    from mediasift.snapshots.diff import snapshot_side

    try:
        side = snapshot_side(Snapshots(settings), name)
    except SnapshotError as error:
        fail(str(error))
    held = side.objects.get(key)
    if held is None:
        fail(f"{uri} was not in the bucket at snapshot {name!r}")
    exact = [v for v in versions if (v.etag, v.version_id) == (held.etag, held.version_id)]
    return exact or [v for v in versions if v.etag == held.etag][-1:], side.index, side.tables


def _analysis_rows(analysis: dict | None) -> list[tuple[str, str]]:
    if analysis is None:
        return []
    original = analysis["duplicate_of"]
    score = analysis["anomaly_score"]
    flagged = " (flagged)" if analysis["anomaly_flagged"] else ""
    return [
        ("duplicate_of", f"s3://{original['bucket']}/{original['key']} ({analysis['duplicate_reason']})"
         if original else "-"),
        ("anomaly_score", "-" if score is None else f"{score:.3f}{flagged}"),
        ("labels", ", ".join(analysis["labels"]) or "-"),
        ("flags", ", ".join(f["rule"] for f in analysis["flags"]) or "-"),
        ("tags", ", ".join(analysis["tags"]) or "-"),
    ]
