"""The analysis stage: unpartitioned assets over every object version, each a batch view of the object table
(mediasift.analysis.views) written as Parquet under `<derived>/analysis/`, with counts and plots for the UI."""

import base64
import io
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import dagster as dg
import numpy as np
from pydantic import Field

from assets.source import SOURCE
from mediasift.analysis import views
from mediasift.analysis.anomalies import THRESHOLD, AnomalyScore
from mediasift.analysis.clusters import Clustering, ClusterSettings
from mediasift.analysis.duplicates import NearRule
from mediasift.analysis.taxonomy import Taxonomy, load_taxonomy
from mediasift.config import Settings
from mediasift.store.parquet import FeatureTables
from resources import SettingsResource

GROUP = "analysis"
DUPLICATES = dg.AssetKey(["mediasift", "duplicates"])
CLUSTERS = dg.AssetKey(["mediasift", "clusters"])
ANOMALY_SCORES = dg.AssetKey(["mediasift", "anomaly_scores"])
CLASSIFICATIONS = dg.AssetKey(["mediasift", "classifications"])
REPLAY_CHECK = "replay_matches_arrival"
"""The groups' replay gives every object the verdict it got at arrival."""


class TaxonomyConfig(dg.Config):
    taxonomy: str | None = Field(None, description="Taxonomy YAML to apply instead of the configured one.")


def build_analysis_assets(taxonomy: Path | None) -> list[dg.AssetsDefinition]:
    """`taxonomy`: the YAML applied when a run names none (MEDIASIFT_TAXONOMY); None: labels, gaps and flags
    wait for one."""

    def taxonomy_of(config: TaxonomyConfig) -> tuple[Path | None, Taxonomy | None]:
        path = Path(config.taxonomy) if config.taxonomy else taxonomy
        return path, None if path is None else load_taxonomy(path)

    @dg.asset(key=DUPLICATES, deps=[SOURCE], group_name=GROUP, kinds={"parquet"},
              check_specs=[dg.AssetCheckSpec(REPLAY_CHECK, asset=DUPLICATES)])
    def duplicates(settings: SettingsResource) -> dg.MaterializeResult:
        """Groups of exact copies (same sha256) and near copies (visual feature and pHash, or the words'
        MinHash) with the representative each member was matched to and why. A replay of every object in
        arrival order, so it shows the verdicts objects got when they arrived."""
        derived = settings.get().derived_path
        objects = views.load_objects(derived)
        view = views.duplicate_view(objects)
        path = views.write_duplicates(views.analysis_dir(derived), view.groups)
        kinds = Counter(g.kind for g in view.groups)
        return dg.MaterializeResult(metadata={
            "objects": len(objects), "groups": len(view.groups), "exact_groups": kinds["exact"],
            "near_groups": kinds["near"], "duplicates": sum(len(g.members) - 1 for g in view.groups),
            "differing_from_arrival": view.differing, **_rule(NearRule()), **_file(path),
            "largest_groups": dg.MetadataValue.md(_groups_table(view.groups)),
        }, check_results=[dg.AssetCheckResult(
            check_name=REPLAY_CHECK, passed=view.differing == 0, severity=dg.AssetCheckSeverity.WARN,
            metadata={"differing": view.differing, "objects": len(objects)},
            description="Verdicts differ only when runs judged at the same moment, unseen by each other; the "
                        "replay, in inbox order, settles them.")])

    @dg.asset(key=ANOMALY_SCORES, deps=[SOURCE], group_name=GROUP, kinds={"parquet"})
    def anomaly_scores(settings: SettingsResource) -> dg.MaterializeResult:
        """Every current object rescored against a reference of all of them (kNN distance as a percentile of
        the reference's own), appended to the history, and the new reference that arriving objects are
        scored against. Pictures are scored by their visual feature, other objects by their words."""
        derived = settings.get().derived_path
        objects, analysis = views.load_objects(derived), views.analysis_dir(derived)
        metadata: dict = {"objects": len(objects), "threshold": THRESHOLD}
        for space in views.SPACES:
            rescored = views.rescore_view(objects, space)
            metadata[f"{space}_history_rows"] = views.append_history(analysis, rescored)
            reference = views.write_reference(analysis, rescored)
            metadata.update(_scores(space, rescored.scores, reference))
        return dg.MaterializeResult(metadata=metadata)

    @dg.asset(key=CLASSIFICATIONS, deps=[SOURCE, ANOMALY_SCORES], group_name=GROUP, kinds={"parquet"})
    def classifications(settings: SettingsResource, config: TaxonomyConfig) -> dg.MaterializeResult:
        """Every current object's taxonomy labels, and the rules' flags. Applying the same taxonomy again
        changes nothing; a changed taxonomy (another fingerprint) relabels every object."""
        path, taxonomy = taxonomy_of(config)
        if taxonomy is None:
            return dg.MaterializeResult(metadata={"taxonomy": "none: set MEDIASIFT_TAXONOMY or the run's config"})
        derived = settings.get().derived_path
        objects, analysis = views.load_objects(derived), views.analysis_dir(derived)
        text = views.layer_text(FeatureTables(derived), set(objects["version_hash"].to_list()))
        classified = _classified(objects, settings.get(), taxonomy, text)
        scores = views.current_scores(objects, views.read_history(analysis) or [])
        flags = views.flag_view(objects, taxonomy.rules, scores, text, views.read_flags(analysis) or ())
        return dg.MaterializeResult(metadata={
            "taxonomy": str(path), "fingerprint": taxonomy.fingerprint, "objects": len(classified.classifications),
            "labels_changed": views.write_classifications(analysis, classified),
            "flags": len(flags), "flags_changed": views.write_flags(analysis, flags),
            **_file(analysis / views.CLASSIFICATIONS), "labels": dg.MetadataValue.md(_label_table(classified)),
            "flags_by_rule": dg.MetadataValue.md(_count_table("rule", Counter(f.flag.rule for f in flags))),
        })

    @dg.asset(key=CLUSTERS, deps=[SOURCE, CLASSIFICATIONS], group_name=GROUP, kinds={"parquet"})
    def clusters(settings: SettingsResource, config: TaxonomyConfig) -> dg.MaterializeResult:
        """HDBSCAN clusters of each space (visual features; words' vectors) on a PCA reduction, with
        representatives and keywords; ids kept across refreshes. With a taxonomy, clusters are named by the
        label most members carry, and the gaps report lists labels with few objects and unnamed clusters."""
        _, taxonomy = taxonomy_of(config)
        derived = settings.get().derived_path
        objects, analysis = views.load_objects(derived), views.analysis_dir(derived)
        labels = None
        if taxonomy is not None:
            labels = _classified(objects, settings.get(), taxonomy).labels(taxonomy.classify.unassigned)
        metadata: dict = {"objects": len(objects)}
        for space in views.SPACES:
            previous = views.previous_membership(analysis, space)
            clustering, places = views.cluster_view(objects, space, previous, taxonomy, labels)
            path = views.write_clusters(analysis, clustering, places)
            metadata.update(_clusters(clustering, places, path, previous))
        return dg.MaterializeResult(metadata=metadata)

    return [duplicates, anomaly_scores, classifications, clusters]


def _classified(objects, settings: Settings, taxonomy: Taxonomy,
                text: views.LayerText | None = None) -> views.Classified:
    """The stored labels when they are this taxonomy over these objects (MiniLM is not even loaded)."""
    stored = views.read_classifications(views.analysis_dir(settings.derived_path))
    if views.is_classified(stored, objects, taxonomy):
        return stored
    if text is None:
        text = views.layer_text(FeatureTables(settings.derived_path), set(objects["version_hash"].to_list()))
    return views.classify_view(objects, taxonomy, views.LazyTextEncoder(settings.device), text)


def _rule(rule: NearRule) -> dict:
    return {"near_cosine": rule.cosine, "near_phash_distance": rule.phash_distance,
            "near_phash_cosine": rule.phash_cosine, "near_jaccard": rule.jaccard}


def _file(path: Path) -> dict:
    return {"path": dg.MetadataValue.path(str(path)), "bytes": path.stat().st_size}


def _scores(space: str, scores: Sequence[AnomalyScore], reference: Path | None) -> dict:
    values = [s.score for s in scores]
    found = {f"{space}_scored": len(scores), f"{space}_flagged": sum(s.flagged for s in scores),
             f"{space}_reference_size": scores[0].reference_size if scores else 0}
    if reference is not None:
        found[f"{space}_reference"] = dg.MetadataValue.path(str(reference))
    if values:
        top = sorted(scores, key=lambda s: -s.score)[:5]
        found[f"{space}_scores"] = dg.MetadataValue.md(
            _score_histogram(values, THRESHOLD, space) + "\n\n| object | score |\n|---|---|\n"
            + "\n".join(f"| `s3://{s.ref.bucket}/{s.ref.key}` | {s.score:.3f} |" for s in top))
    return found


def _clusters(clustering: Clustering, places: dict, path: Path, previous: dict | None) -> dict:
    space, found = clustering.space, clustering.clusters
    n = sum(c.size for c in found) + len(clustering.noise)
    metadata = {f"{space}_clusters": len(found), f"{space}_noise": len(clustering.noise),
                f"{space}_gaps": len(clustering.gaps), f"{space}_min_cluster_size": ClusterSettings().cluster_size(n),
                f"{space}_ids_kept": len({c.id for c in found} & set(previous or ())),
                f"{space}_bytes": path.stat().st_size}
    if found:
        metadata[f"{space}_plots"] = dg.MetadataValue.md(
            _size_chart(clustering) + "\n\n" + _cluster_map(clustering, places) + "\n\n" + _cluster_table(clustering))
    return metadata


def _groups_table(groups) -> str:
    rows = [f"| {g.kind} | `s3://{g.representative.bucket}/{g.representative.key}` | {len(g.members)} |"
            for g in sorted(groups, key=lambda g: -len(g.members))[:10]]
    return "| kind | representative | members |\n|---|---|---|\n" + "\n".join(rows) if rows else "no duplicates"


def _label_table(classified: views.Classified) -> str:
    return _count_table("label", Counter(s.label for c in classified.classifications for s in c.labels))


def _count_table(name: str, counts: Counter) -> str:
    if not counts:
        return f"no {name}s"
    return f"| {name} | objects |\n|---|---|\n" + "\n".join(f"| {k} | {n} |" for k, n in counts.most_common())


def _cluster_table(clustering: Clustering) -> str:
    rows = [f"| {c.id} | {c.size} | {c.label or '-'} | {', '.join(c.keywords[:5])} |" for c in clustering.clusters]
    return "| cluster | size | label | keywords |\n|---|---|---|---|\n" + "\n".join(rows)


def _png(figure, alt: str) -> str:
    """A Markdown image the UI shows inline (matplotlib's Agg canvas, no display, no global state)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=72, bbox_inches="tight")
    return f"![{alt}](data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()})"


def _figure():
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.5))
    return figure, figure.subplots()


def _size_chart(clustering: Clustering) -> str:
    figure, ax = _figure()
    ax.bar([c.id[:6] for c in clustering.clusters], [c.size for c in clustering.clusters], color="#4c72b0")
    ax.set(title=f"{clustering.space} cluster sizes ({len(clustering.noise)} noise)", ylabel="objects")
    ax.tick_params(axis="x", labelrotation=60)
    return _png(figure, "cluster sizes")


def _cluster_map(clustering: Clustering, places: dict) -> str:
    figure, ax = _figure()
    noise = np.array([places[r] for r in clustering.noise]).reshape(-1, 2)
    ax.scatter(noise[:, 0], noise[:, 1], s=6, c="#bbbbbb", label="noise")
    for c in clustering.clusters:
        points = np.array([places[m] for m in c.members])
        ax.scatter(points[:, 0], points[:, 1], s=8, label=c.label or c.id[:6])
    ax.set(title=f"{clustering.space} clusters, 2-D PCA", xticks=[], yticks=[])
    ax.legend(fontsize=6, loc="best")
    return _png(figure, "cluster map")


def _score_histogram(values: list[float], threshold: float, space: str) -> str:
    figure, ax = _figure()
    ax.hist(values, bins=min(50, max(10, len(values) // 5)), range=(0, 1), color="#4c72b0")
    ax.axvline(threshold, color="#c44e52", linestyle="--", label=f"threshold {threshold}")
    ax.set(title=f"{space} anomaly scores", xlabel="score (percentile of the reference's kNN distances)",
           ylabel="objects")
    ax.legend()
    return _png(figure, "anomaly scores")
