"""Batch views over the object table: what the analysis assets write under `<derived>/analysis/` and what
`mediasift duplicates|clusters|anomalies|flags|classify` print (DESIGN §6, §10).

Each view is a function of the object table's current rows. Duplicates replay every row in arrival order
(so they equal the verdicts the rows got at arrival, superseded versions included: they were there when
later objects arrived); the other views describe each object once, by its newest version. The files are
plain Parquet that polars and duckdb read as they are:

- `duplicates.parquet`: one row per group member (group id, kind, representative, member, reason).
- `clusters_<space>.parquet`: one row per object of the space (cluster null for noise; label, keywords,
  representative rank, its place on the 2-D PCA map), and `gaps_<space>.parquet` beside it.
- `anomaly_history.parquet`: every rescore's scores (older rows stay), and `anomaly_reference_<space>.parquet`:
  the reference arrivals are scored against (`load_reference`).
- `classifications.parquet`: one row per (object version, label), with the taxonomy's fingerprint.
- `flags.parquet`: one row per (object version, rule), with the alert's idempotency id and when it was
  first raised.

Each object is scored for anomalies in one space: by its picture feature when it has one (`visual`), else
by its words' vector (`text`), as duplicates compare it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mediasift.analysis.anomalies import THRESHOLD, AnomalyReference, AnomalyScore, K, anomalies_json, latest, rescore
from mediasift.analysis.clusters import Cluster, Clustering, ClusterSettings, Embedded, cluster_space, reduce
from mediasift.analysis.duplicates import DuplicateGroup, Fingerprint, Member, Verdict, duplicate_groups, replay
from mediasift.analysis.gaps import Gap, report_gaps
from mediasift.analysis.objects import OBJECTS, SCHEMA, current, fingerprint_of, ref_of, scan_objects, verdict_of
from mediasift.analysis.reference import IndexSettings, ObjectRef, VectorIndex
from mediasift.analysis.taxonomy import (
    TEXT_LAYERS,
    Classification,
    Entity,
    Evidence,
    Flag,
    LabelScore,
    ObjectFacts,
    RuleSpec,
    Taxonomy,
    TextEncoder,
    TextRow,
    classify_all,
    evaluate_rules,
    labels_by_object,
)
from mediasift.store.parquet import FeatureTables

if TYPE_CHECKING:
    import polars as pl

SPACES: dict[str, str] = {"visual": "visual", "text": "text_vector"}
"""Each space and the object-table column holding its object-level vector."""
ANALYSIS = "analysis"
DUPLICATES, HISTORY, CLASSIFICATIONS, FLAGS = ("duplicates.parquet", "anomaly_history.parquet",
                                               "classifications.parquet", "flags.parquet")
REF = [("bucket", pa.string()), ("key", pa.string()), ("etag", pa.string()), ("object_id", pa.string())]
TIME = pa.timestamp("us", tz="UTC")


def analysis_dir(derived: Path) -> Path:
    return Path(derived) / ANALYSIS


def clusters_path(analysis: Path, space: str) -> Path:
    return analysis / f"clusters_{space}.parquet"


def gaps_path(analysis: Path, space: str) -> Path:
    return analysis / f"gaps_{space}.parquet"


def reference_path(analysis: Path, space: str) -> Path:
    return analysis / f"anomaly_reference_{space}.parquet"


def load_objects(derived: Path, live_version_hashes: set[str] | None = None) -> pl.DataFrame:
    """The object table's rows in arrival order; an empty frame of its schema before anything is indexed."""
    import polars as pl

    frame = scan_objects(FeatureTables(Path(derived)))
    return pl.from_arrow(SCHEMA.empty_table()) if frame is None else current(frame, live_version_hashes)


def table_signature(derived: Path) -> str | None:
    """Changes whenever a row of the object table is written, replaced or removed (file count, sizes and
    newest mtime); None while the table is empty. One stat per object version, no file is read."""
    files = [stat for path in (Path(derived) / OBJECTS).glob("object_id=*/*.parquet") if (stat := _stat(path))]
    if not files:
        return None
    facts = f"{len(files)}:{sum(f.st_size for f in files)}:{max(f.st_mtime_ns for f in files)}"
    return hashlib.sha256(facts.encode()).hexdigest()[:16]


def _stat(path: Path) -> os.stat_result | None:
    """None for a file removed since it was listed (a tombstone run at that moment)."""
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def newest_versions(objects: pl.DataFrame) -> pl.DataFrame:
    """One row per object, its newest arrival: a key overwritten since is described as it is now."""
    return objects.unique("object_id", keep="last", maintain_order=True).sort("arrived", "bucket", "key", "etag")


def _matrix(objects: pl.DataFrame, column: str) -> np.ndarray:
    """The non-null vectors of `column`, in row order, as one float32 matrix."""
    present = objects[column].drop_nulls()
    if not len(present):
        return np.zeros((0, 0), np.float32)
    return present.to_numpy().astype(np.float32, copy=False)


def _light_rows(objects: pl.DataFrame) -> Iterable[dict]:
    """Rows without their vectors, which are read as matrices instead (a list of floats per row is slow)."""
    return objects.drop("visual", "text_vector").iter_rows(named=True)


def _write(path: Path, table: pa.Table, compression: str = "zstd") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".parquet.partial")
    pq.write_table(table, partial, compression=compression)
    os.replace(partial, path)
    return path


def _write_if_changed(path: Path, table: pa.Table) -> bool:
    """Leaves the file untouched (same bytes, same mtime) when it already holds these rows."""
    if path.exists() and pq.read_table(path).equals(table):
        return False
    _write(path, table)
    return True


def _read(path: Path) -> pa.Table | None:
    try:
        return pq.read_table(path)
    except FileNotFoundError:
        return None


def _ref_columns(ref: ObjectRef, prefix: str = "") -> dict[str, str]:
    return {prefix + name: value for name, value in ref.as_json().items()}


def _ref(row: Mapping, prefix: str = "") -> ObjectRef:
    return ObjectRef(row[prefix + "bucket"], row[prefix + "key"], row[prefix + "etag"], row[prefix + "object_id"])


def fingerprints(objects: pl.DataFrame) -> list[Fingerprint]:
    """Every row's fingerprint as its run made it (objects.fingerprint_of), vectors read in bulk."""
    pictures = iter(_matrix(objects, "visual"))
    has_picture = objects["visual"].is_not_null().to_list()
    return [fingerprint_of({**row, "visual": next(pictures) if has else None})
            for row, has in zip(_light_rows(objects), has_picture, strict=True)]


def stored_verdicts(objects: pl.DataFrame) -> dict[ObjectRef, Verdict]:
    """The duplicate verdict each row got at arrival."""
    return {ref_of(row): verdict_of(row) for row in _light_rows(objects)}


@dataclass(frozen=True)
class DuplicateView:
    groups: list[DuplicateGroup]
    verdicts: dict[ObjectRef, Verdict]
    differing: int
    """Objects whose replayed verdict is not the one stored at arrival: runs judging at the same moment
    do not see each other, and the replay (in inbox order) settles the tie."""


def duplicate_view(objects: pl.DataFrame) -> DuplicateView:
    prints = fingerprints(objects)
    verdicts = replay(prints)
    stored = stored_verdicts(objects)
    differing = sum(verdicts[ref] != verdict for ref, verdict in stored.items())
    return DuplicateView(duplicate_groups(prints, verdicts), verdicts, differing)


DUPLICATES_SCHEMA = pa.schema([("group", pa.string()), ("kind", pa.string()), ("position", pa.int32()),
                               *[("representative_" + name, kind) for name, kind in REF], *REF,
                               ("reason", pa.string())])


def group_id(group: DuplicateGroup) -> str:
    """Stable while the representative is: its version and the group's kind."""
    r = group.representative
    return hashlib.sha256("\0".join((group.kind, r.bucket, r.key, r.etag)).encode()).hexdigest()[:12]


def write_duplicates(analysis: Path, groups: Sequence[DuplicateGroup]) -> Path:
    rows = [{"group": group_id(g), "kind": g.kind, "position": position,
             **_ref_columns(g.representative, "representative_"), **_ref_columns(m.ref), "reason": m.reason}
            for g in groups for position, m in enumerate(g.members)]
    return _write(analysis / DUPLICATES, pa.Table.from_pylist(rows, schema=DUPLICATES_SCHEMA))


def read_duplicates(analysis: Path) -> list[DuplicateGroup] | None:
    table = _read(analysis / DUPLICATES)
    if table is None:
        return None
    groups = []
    for _, rows in groupby(table.to_pylist(), key=lambda row: row["group"]):
        members = sorted(rows, key=lambda row: row["position"])
        groups.append(DuplicateGroup(members[0]["kind"], _ref(members[0], "representative_"),
                                     tuple(Member(_ref(m), m["reason"]) for m in members)))
    return groups


def embedded(objects: pl.DataFrame, space: str) -> list[Embedded]:
    """The newest version of every object with a vector in `space`, with the words its keywords come from."""
    import polars as pl

    rows = newest_versions(objects).filter(pl.col(SPACES[space]).is_not_null())
    vectors = _matrix(rows, SPACES[space])
    return [Embedded(ref_of(row), vector, tuple(row["tags"] or ()), row["text"] or "")
            for row, vector in zip(_light_rows(rows), vectors, strict=True)]


def cluster_view(objects: pl.DataFrame, space: str, previous: Mapping[str, Collection[str]] | None = None,
                 taxonomy: Taxonomy | None = None, labels: Mapping[str, Collection[str]] | None = None,
                 settings: ClusterSettings | None = None) -> tuple[Clustering, dict[ObjectRef, tuple[float, float]]]:
    """The space's clusters (ids kept from `previous`), labelled with their gaps when a taxonomy and the
    objects' labels are given, and each object's place on a 2-D PCA map."""
    members = embedded(objects, space)
    clustering = cluster_space(space, members, previous, settings)
    if taxonomy is not None and labels is not None:
        clustering = report_gaps(clustering, taxonomy, labels)
    return clustering, _map_2d(members)


def _map_2d(members: Sequence[Embedded]) -> dict[ObjectRef, tuple[float, float]]:
    if len(members) < 2:
        return {m.ref: (0.0, 0.0) for m in members}
    points = reduce(np.stack([m.vector for m in members]), 2, 50_000, 0)
    points = np.pad(points, ((0, 0), (0, 2 - points.shape[1])))
    return {m.ref: (float(x), float(y)) for m, (x, y) in zip(members, points, strict=True)}


CLUSTERS_SCHEMA = pa.schema([("cluster", pa.string()), ("label", pa.string()), ("keywords", pa.list_(pa.string())),
                             ("representative", pa.int32()), *REF, ("x", pa.float32()), ("y", pa.float32())])
GAPS_SCHEMA = pa.schema([("kind", pa.string()), ("label", pa.string()), ("cluster", pa.string()),
                         ("members", pa.int64()), ("share", pa.float64()), ("target_share", pa.float64()),
                         ("reason", pa.string())])


def write_clusters(analysis: Path, clustering: Clustering, places: Mapping[ObjectRef, tuple[float, float]]) -> Path:
    rows = []
    for c in clustering.clusters:
        rank = {ref: i for i, ref in enumerate(c.representatives)}
        rows += [{"cluster": c.id, "label": c.label, "keywords": list(c.keywords), "representative": rank.get(m),
                  **_ref_columns(m), "x": places[m][0], "y": places[m][1]} for m in c.members]
    rows += [{"cluster": None, "label": None, "keywords": [], "representative": None, **_ref_columns(n),
              "x": places[n][0], "y": places[n][1]} for n in clustering.noise]
    _write(gaps_path(analysis, clustering.space),
           pa.Table.from_pylist([g.as_json() for g in clustering.gaps], schema=GAPS_SCHEMA))
    return _write(clusters_path(analysis, clustering.space), pa.Table.from_pylist(rows, schema=CLUSTERS_SCHEMA))


def read_clusters(analysis: Path, space: str) -> Clustering | None:
    table = _read(clusters_path(analysis, space))
    if table is None:
        return None
    rows = table.to_pylist()
    clusters = []
    for cid, group in groupby((r for r in rows if r["cluster"] is not None), key=lambda r: r["cluster"]):
        group = list(group)
        representatives = sorted((r for r in group if r["representative"] is not None),
                                 key=lambda r: r["representative"])
        clusters.append(Cluster(cid, tuple(_ref(r) for r in group), tuple(_ref(r) for r in representatives),
                                tuple(group[0]["keywords"]), group[0]["label"]))
    gaps = _read(gaps_path(analysis, space))
    return Clustering(space, tuple(clusters), tuple(_ref(r) for r in rows if r["cluster"] is None),
                      tuple(Gap(**g) for g in gaps.to_pylist()) if gaps is not None else ())


def previous_membership(analysis: Path, space: str) -> dict[str, frozenset[str]] | None:
    """What the last refresh's clusters held, so this refresh keeps their ids."""
    previous = read_clusters(analysis, space)
    return None if previous is None else previous.membership()


def scored_in(objects: pl.DataFrame, space: str) -> tuple[list[ObjectRef], np.ndarray]:
    """The objects scored in `space` (newest versions): pictures in `visual`, the rest by words in `text`."""
    import polars as pl

    rows = newest_versions(objects).filter(pl.col(SPACES[space]).is_not_null())
    if space == "text":
        rows = rows.filter(pl.col("visual").is_null())
    return [ref_of(row) for row in _light_rows(rows)], _matrix(rows, SPACES[space])


@dataclass(frozen=True)
class Rescored:
    space: str
    reference: AnomalyReference | None
    """None when the space has too few objects to make one (k or fewer)."""
    vectors: np.ndarray
    scores: list[AnomalyScore]


def rescore_view(objects: pl.DataFrame, space: str, threshold: float = THRESHOLD,
                 at: datetime | None = None) -> Rescored:
    """A new reference from every current object of the space, and each one's leave-one-out score."""
    refs, vectors = scored_in(objects, space)
    if len(refs) <= K:
        return Rescored(space, None, vectors, [])
    reference, scores = rescore(refs, vectors, threshold=threshold, at=at)
    return Rescored(space, reference, vectors, scores)


def write_reference(analysis: Path, rescored: Rescored) -> Path | None:
    """The reference arrivals of this space are scored against; removed when the space has none (a stale one
    would go on scoring against objects that are gone). Uncompressed: embeddings barely compress, and every
    run reads this file (zstd made the read of 20k rows 1 s)."""
    path = reference_path(analysis, rescored.space)
    reference = rescored.reference
    if reference is None:
        path.unlink(missing_ok=True)
        return None
    dim = rescored.vectors.shape[1]
    table = pa.table({
        **{name: pa.array([getattr(r, name) for r in reference.refs], kind) for name, kind in REF},
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(rescored.vectors.reshape(-1), pa.float32()), dim),
        "own_distance": pa.array(reference.own, pa.float64()),
    }).replace_schema_metadata({"k": str(reference.k), "space": rescored.space})
    return _write(path, table, compression="none")


class _StoredReference(AnomalyReference):
    """A reference as the last rescore wrote it, built as AnomalyReference builds itself but for two
    things: its leave-one-out distances are read, not recomputed (a kNN search of every row against all,
    5 s at 5k and 20 s at 20k objects), and its rows are searched exactly, not through an inverted file
    trained at load (2 s at 5k, 9 s at 19k rows; one exact query over 20k rows costs ~10 ms)."""

    def __init__(self, refs: Sequence[ObjectRef], vectors: np.ndarray, own: np.ndarray, k: int):
        self.refs, self.k = list(refs), k
        self._position = {ref: i for i, ref in enumerate(self.refs)}
        self._index = VectorIndex(vectors.shape[1], IndexSettings(ivf_from=len(vectors) + 1))
        self._index.add(vectors)
        self.own = own
        self._sorted = np.sort(own)


def load_reference(analysis: Path, space: str = "visual") -> AnomalyReference | None:
    """The anomaly reference arrivals in `space` are scored against (`score_arrival`), as the last rescore
    wrote it; None before the first rescore, or when the space had too few objects. One Parquet read."""
    table = _read(reference_path(Path(analysis), space))
    if table is None:
        return None
    refs = [_ref(row) for row in table.select([name for name, _ in REF]).to_pylist()]
    vector = table.column("vector").combine_chunks()
    vectors = vector.flatten().to_numpy().reshape(len(refs), vector.type.list_size).astype(np.float32)
    k = int(table.schema.metadata[b"k"])
    return _StoredReference(refs, vectors, table.column("own_distance").to_numpy(), k)


HISTORY_SCHEMA = pa.schema([("space", pa.string()), *REF, ("score", pa.float64()), ("distance", pa.float64()),
                            ("flagged", pa.bool_()), ("scored_at", TIME), ("reference_size", pa.int64()),
                            ("k", pa.int64()), ("threshold", pa.float64())])


def append_history(analysis: Path, rescored: Rescored, threshold: float = THRESHOLD) -> int:
    """Adds this rescore's rows to the history (older rows stay); returns the history's length."""
    rows = [{"space": rescored.space, **_ref_columns(s.ref), "score": s.score, "distance": s.distance,
             "flagged": s.flagged, "scored_at": s.scored_at, "reference_size": s.reference_size, "k": s.k,
             "threshold": threshold} for s in rescored.scores]
    old = _read(analysis / HISTORY)
    new = pa.Table.from_pylist(rows, schema=HISTORY_SCHEMA)
    table = new if old is None else pa.concat_tables([old.cast(HISTORY_SCHEMA), new])
    _write(analysis / HISTORY, table)
    return table.num_rows


def read_history(analysis: Path) -> list[AnomalyScore] | None:
    table = _read(analysis / HISTORY)
    if table is None:
        return None
    return [AnomalyScore(_ref(r), r["score"], r["distance"], r["flagged"], r["scored_at"], r["reference_size"],
                         r["k"]) for r in table.to_pylist()]


def arrival_scores(objects: pl.DataFrame) -> list[AnomalyScore]:
    """The scores rows got at arrival (against the reference of the rescore before them)."""
    return [AnomalyScore(ref_of(r), r["anomaly_score"], r["anomaly_distance"], bool(r["anomaly_flagged"]),
                         r["scored_at"], r["reference_size"] or 0, K)
            for r in _light_rows(objects) if r["anomaly_score"] is not None]


def current_scores(objects: pl.DataFrame, history: Iterable[AnomalyScore]) -> list[AnomalyScore]:
    """Each current object's newest score: its last rescore, or its arrival when that came after."""
    live = {ref_of(r) for r in _light_rows(newest_versions(objects))}
    return [s for s in latest([*history, *arrival_scores(objects)]) if s.ref in live]


def anomaly_view(objects: pl.DataFrame, history: Iterable[AnomalyScore], threshold: float = THRESHOLD,
                 include_all: bool = False) -> dict:
    """`mediasift anomalies --json` (DESIGN §10)."""
    return anomalies_json(current_scores(objects, history), threshold, include_all)


@dataclass
class LayerText:
    """What an object's layer rows say, per version hash: text rows with where they are, their vectors, and
    entities with where they occur. Versions without layer rows fall back to their object-table row."""

    rows: dict[str, list[TextRow]] = field(default_factory=dict)
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    entities: dict[str, list[Entity]] = field(default_factory=dict)


def layer_text(tables: FeatureTables, version_hashes: Collection[str]) -> LayerText:
    import polars as pl

    found, wanted = LayerText(), sorted(version_hashes)
    for layer in (*TEXT_LAYERS, "entities"):
        frame = tables.scan(layer)
        if frame is None:
            continue
        rows = frame.filter(pl.col("version_hash").is_in(wanted) & (pl.col("text") != "")).collect()
        vectors = rows["vector"].to_numpy().astype(np.float32, copy=False)
        for row, vector in zip(rows.drop("vector").iter_rows(named=True), vectors, strict=True):
            if layer == "entities":
                source = json.loads(row["extra"] or "{}").get("source_layer")
                found.entities.setdefault(row["version_hash"], []).append(
                    Entity(row["label"] or "", row["text"], source, row["page"], row["t_start"]))
                continue
            found.rows.setdefault(row["version_hash"], []).append(TextRow(layer, row["text"], row["page"],
                                                                          row["t_start"]))
            if np.any(vector):
                found.vectors.setdefault(row["version_hash"], []).append(vector)
    found.vectors = {h: np.stack(v) for h, v in found.vectors.items()}
    return found


def evidence(objects: pl.DataFrame, text: LayerText | None = None) -> list[Evidence]:
    """What classification reads of each object's newest version."""
    rows = newest_versions(objects)
    text = text or LayerText()
    spaces = {space: iter(_matrix(rows, column)) for space, column in SPACES.items()}
    present = {space: rows[column].is_not_null().to_list() for space, column in SPACES.items()}
    found = []
    for i, row in enumerate(_light_rows(rows)):
        embeddings = {space: next(spaces[space]) for space in SPACES if present[space][i]}
        found.append(Evidence(ref_of(row), text.vectors.get(row["version_hash"]), embeddings,
                              tuple(row["tags"] or ())))
    return found


class LazyTextEncoder:
    """MiniLM, loaded on the first `embed`: a taxonomy without prompts never loads it."""

    def __init__(self, device: str = "cpu"):
        self.device = device
        self._encoder = None

    def embed(self, texts: list[str]) -> np.ndarray:
        if self._encoder is None:
            from mediasift.extraction.models.text import TextEncoder as MiniLM

            self._encoder = MiniLM(self.device)
        return self._encoder.embed(texts)


@dataclass(frozen=True)
class Classified:
    taxonomy: str
    """The fingerprint of the taxonomy applied."""
    version_hashes: tuple[str, ...]
    classifications: tuple[Classification, ...]

    def as_json(self) -> dict:
        """`mediasift classify --json` (DESIGN §10)."""
        return {"objects": [c.as_json() for c in self.classifications]}

    def labels(self, unassigned: str) -> dict[str, frozenset[str]]:
        return labels_by_object(self.classifications, unassigned)


def classify_view(objects: pl.DataFrame, taxonomy: Taxonomy, encoder: TextEncoder,
                  text: LayerText | None = None) -> Classified:
    """Every current object's labels under `taxonomy`: a pure function, so re-applying it changes nothing."""
    hashes = tuple(newest_versions(objects)["version_hash"].to_list())
    return Classified(taxonomy.fingerprint, hashes, classify_all(evidence(objects, text), taxonomy, encoder))


def is_classified(classified: Classified | None, objects: pl.DataFrame, taxonomy: Taxonomy) -> bool:
    """Whether `classified` is this taxonomy applied to exactly the current objects (nothing to redo)."""
    return (classified is not None and classified.taxonomy == taxonomy.fingerprint
            and set(classified.version_hashes) == set(newest_versions(objects)["version_hash"].to_list()))


CLASSIFICATIONS_SCHEMA = pa.schema([("taxonomy", pa.string()), ("version_hash", pa.string()), *REF,
                                    ("rank", pa.int32()), ("label", pa.string()), ("score", pa.float64())])


def write_classifications(analysis: Path, classified: Classified) -> bool:
    """True when the labels changed; the same taxonomy over the same objects leaves the file as it was."""
    rows = [{"taxonomy": classified.taxonomy, "version_hash": h, **_ref_columns(c.ref), "rank": rank,
             "label": s.label, "score": s.score}
            for h, c in zip(classified.version_hashes, classified.classifications, strict=True)
            for rank, s in enumerate(c.labels)]
    return _write_if_changed(analysis / CLASSIFICATIONS, pa.Table.from_pylist(rows, schema=CLASSIFICATIONS_SCHEMA))


def read_classifications(analysis: Path) -> Classified | None:
    table = _read(analysis / CLASSIFICATIONS)
    if table is None:
        return None
    rows = table.to_pylist()
    versions = [(h, list(group)) for h, group in groupby(rows, key=lambda r: r["version_hash"])]
    fingerprint = rows[0]["taxonomy"] if rows else ""
    return Classified(fingerprint, tuple(h for h, _ in versions), tuple(
        Classification(_ref(group[0]), tuple(LabelScore(r["label"], r["score"]) for r in group))
        for _, group in versions))


@dataclass(frozen=True)
class RaisedFlag:
    flag: Flag
    at: datetime
    """When the flag was first raised for this object version (kept across re-evaluations)."""

    def as_json(self) -> dict:
        return {**self.flag.ref.as_json(), "rule": self.flag.rule, "reason": self.flag.reason,
                "at": self.at.isoformat()}


def facts(objects: pl.DataFrame, scores: Iterable[AnomalyScore], text: LayerText | None = None) -> list[ObjectFacts]:
    """What rules read of each object's newest version: its layer rows' words and entities (its object-table
    words when it has no layer rows), its newest anomaly score and its arrival duplicate verdict."""
    text = text or LayerText()
    score = {s.ref: s.score for s in scores}
    found = []
    for row in _light_rows(newest_versions(objects)):
        ref, verdict, h = ref_of(row), verdict_of(row), row["version_hash"]
        words = text.rows.get(h) or ([TextRow("object", row["text"])] if row["text"] else [])
        entities = text.entities.get(h) or [Entity(e["label"], e["text"]) for e in row["entities"] or ()]
        found.append(ObjectFacts(ref, row["version_id"], row["content_type"], row["size"], tuple(words),
                                 tuple(entities), score.get(ref), verdict.duplicate_of, verdict.kind))
    return found


def flag_view(objects: pl.DataFrame, rules: Sequence[RuleSpec], scores: Iterable[AnomalyScore],
              text: LayerText | None = None, previous: Iterable[RaisedFlag] = (),
              at: datetime | None = None) -> list[RaisedFlag]:
    """Every rule over every current object; a flag raised before (by an earlier evaluation or at arrival)
    keeps the time it was first raised."""
    first = {**{a.flag.id: a.at for a in arrival_flags(objects)}, **{p.flag.id: p.at for p in previous}}
    now = at or datetime.now(UTC)
    return [RaisedFlag(flag, first.get(flag.id, now))
            for f in facts(objects, scores, text) for flag in evaluate_rules(rules, f)]


def arrival_flags(objects: pl.DataFrame) -> list[RaisedFlag]:
    """The flags each current object's newest version got in its own run (its row's `flags` JSON)."""
    raised = []
    for row in _light_rows(newest_versions(objects)):
        for flag in json.loads(row["flags"] or "[]"):
            raised.append(RaisedFlag(Flag(flag["rule"], ref_of(row), flag["reason"], flag["id"]),
                                     datetime.fromisoformat(flag["at"])))
    return raised


def flags_json(flags: Iterable[RaisedFlag]) -> dict:
    """`mediasift flags --json` (DESIGN §10)."""
    return {"flags": [f.as_json() for f in flags]}


FLAGS_SCHEMA = pa.schema([*REF, ("rule", pa.string()), ("reason", pa.string()), ("id", pa.string()), ("at", TIME)])


def write_flags(analysis: Path, flags: Sequence[RaisedFlag]) -> bool:
    rows = [{**_ref_columns(f.flag.ref), "rule": f.flag.rule, "reason": f.flag.reason, "id": f.flag.id, "at": f.at}
            for f in flags]
    return _write_if_changed(analysis / FLAGS, pa.Table.from_pylist(rows, schema=FLAGS_SCHEMA))


def read_flags(analysis: Path) -> list[RaisedFlag] | None:
    table = _read(analysis / FLAGS)
    if table is None:
        return None
    return [RaisedFlag(Flag(r["rule"], _ref(r), r["reason"], r["id"]), r["at"]) for r in table.to_pylist()]
