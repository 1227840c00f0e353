"""Hybrid retrieval over every layer: vector (MiniLM) + full text (BM25), fused by reciprocal rank.

Each text layer's table answers one LanceDB hybrid query (its vector and BM25 lists fused by LanceDB's
RRF reranker); the layers' lists are then fused here, with the same formula, into one ranking. Each hit
is a place inside an object: its lineage plus `t_start/t_end` or `page`. The visual layer's own vectors are
image features, not text, so its rows (an image, a shot, a page) are found by their words: the ImageNet
tags the visual model gave them and their on-screen text. When CLIP is configured, they are found by
meaning too: the query's CLIP text vector against the rows' CLIP image vectors, fused with that BM25 as
the text layers' searches are. A hit's `extractor` names the models its row came from.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np

from mediasift.extraction.layers.rows import LAYERS
from mediasift.store.lance import LanceIndex, clip_mismatch, sql_quote, vector_dim
from mediasift.store.records import CLIP_COLUMN

log = logging.getLogger(__name__)

RRF_K = 60
TEXT_LAYERS = tuple(layer for layer in LAYERS if layer != "visual")
"""Layers whose rows carry MiniLM text vectors."""
COLUMNS = ["version_hash", "row_no", "bucket", "key", "etag", "version_id", "object_id", "layer", "modality",
           "kind", "t_start", "t_end", "page", "text", "extractor", "extra"]
RELEVANCE = "_relevance_score"
"""The column in which LanceDB's RRF reranker returns a hybrid row's fused score."""


@dataclass
class Hit:
    bucket: str
    key: str
    etag: str
    version_id: str | None
    object_id: str
    layer: str
    modality: str
    t_start: float | None
    t_end: float | None
    page: int | None
    text: str
    score: float
    extractor: str

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class ObjectHits:
    bucket: str
    key: str
    etag: str
    object_id: str
    score: float
    hits: list[Hit] = field(default_factory=list)


@dataclass(frozen=True)
class Filters:
    layers: tuple[str, ...] = LAYERS
    modality: str | None = None
    prefix: str | None = None

    def where(self) -> str | None:
        clauses = []
        if self.modality:
            clauses.append(f"modality = '{sql_quote(self.modality)}'")
        if self.prefix:
            clauses.append(f"starts_with(key, '{sql_quote(self.prefix)}')")
        return " AND ".join(clauses) or None


class Searcher:
    def __init__(self, index: LanceIndex, models):
        self.index = index
        self.models = models

    def search(self, query: str, k: int = 10, filters: Filters | None = None) -> list[Hit]:
        filters = filters or Filters()
        unknown = set(filters.layers) - set(LAYERS)
        if unknown:
            raise ValueError(f"unknown layer(s) {sorted(unknown)}; layers are {', '.join(LAYERS)}")
        where = filters.where()
        depth = max(k * 4, 20)
        ranked: list[list[dict]] = []
        text_layers = [layer for layer in filters.layers if layer in TEXT_LAYERS and self.index.table(layer)]
        if text_layers:
            vector = self.models.text.embed([query])[0]
            for layer in text_layers:
                ranked.append(hybrid_search(self.index.table(layer), vector, query, where, depth, self.index.tuning))
        if "visual" in filters.layers and self.index.table("visual"):
            ranked.append(self._visual(self.index.table("visual"), query, where, depth))
        return [_hit(row, score) for row, score in fuse(ranked)[:k]]

    def _visual(self, table, query: str, where: str | None, depth: int) -> list[dict]:
        """Tags and on-screen text by BM25; with CLIP, fused with the query's CLIP text vector against the
        rows' CLIP image vectors. An index made with another CLIP, or none, is refused with what to change."""
        clip = self.models.visual_clip
        if clip is None:
            return text_search(table, query, where, depth)
        held = vector_dim(table.schema, CLIP_COLUMN)
        if held != clip.dim:
            raise ValueError(clip_mismatch("visual", held, clip.dim, f"queries by {clip.extractor}"))
        vector = clip.embed_texts([query])[0]
        return hybrid_search(table, vector, query, where, depth, self.index.tuning, column=CLIP_COLUMN)

    def search_grouped(self, query: str, k: int = 10, filters: Filters | None = None) -> list[ObjectHits]:
        groups: dict[str, ObjectHits] = {}
        for hit in self.search(query, k * 3, filters):
            group = groups.setdefault(hit.object_id, ObjectHits(hit.bucket, hit.key, hit.etag, hit.object_id, 0.0))
            group.hits.append(hit)
            group.score += hit.score
        return sorted(groups.values(), key=lambda g: -g.score)[:k]


def fuse(rankings: list[list[dict]]) -> list[tuple[dict, float]]:
    """Reciprocal-rank fusion: a row's score is Σ 1/(60 + rank) over the lists it appears in.

    A list from `hybrid_search` has been fused already, by LanceDB with the same formula over its table's
    vector and full-text lists: its rows bring that sum (`_relevance_score`) instead of their rank, so a
    row that both searches of one layer found still outranks the best row another layer's vector search
    alone found. Contributions are float32, as LanceDB's are, so equal ranks give equal scores."""
    scores: dict[tuple, float] = {}
    rows: dict[tuple, dict] = {}
    for ranking in rankings:
        for rank, row in enumerate(ranking):
            identity = (row["layer"], row["version_hash"], row["row_no"])
            contribution = row[RELEVANCE] if RELEVANCE in row else float(np.float32(1.0 / (RRF_K + rank + 1)))
            scores[identity] = scores.get(identity, 0.0) + contribution
            rows.setdefault(identity, row)
    order = sorted(scores, key=lambda i: -scores[i])
    return [(rows[i], scores[i]) for i in order]


def vector_search(table, vector, where: str | None, limit: int, tuning, column: str = "vector") -> list[dict]:
    query = table.search(vector, vector_column_name=column).distance_type("cosine").limit(limit)
    query = query.nprobes(tuning.nprobes).refine_factor(tuning.refine_factor)
    if where:
        query = query.where(where, prefilter=True)
    return query.select([*COLUMNS, "_distance"]).to_list()


def hybrid_search(table, vector, text: str, where: str | None, limit: int, tuning,
                  column: str = "vector") -> list[dict]:
    """One table's rows ranked by LanceDB's hybrid query: the tuned vector search (over `column`) and a BM25
    search, each `limit` deep and filtered before ranking, fused by its RRF reranker (k=60) into
    `_relevance_score`.

    A text without terms the full-text parser accepts (an empty query; a quoted phrase, which the
    position-less FTS index cannot answer) leaves the vector search alone, ranked as `fuse` ranks plain
    lists. The columns are picked from the result rather than with `.select`, which LanceDB hands to both
    sub-queries without their score columns, and Lance then logs a deprecation warning for each."""
    from lancedb.rerankers import RRFReranker

    query = (table.search(query_type="hybrid", vector_column_name=column).vector(vector).text(text)
             .distance_type("cosine").nprobes(tuning.nprobes).refine_factor(tuning.refine_factor).limit(limit)
             .rerank(RRFReranker(K=RRF_K)))
    if where:
        query = query.where(where, prefilter=True)
    try:
        results = query.to_arrow()
    except ValueError as error:
        log.debug("search.full_text_skipped table=%s query=%r reason=%s", table.name, text, error)
        return vector_search(table, vector, where, limit, tuning, column)
    return results.select([*COLUMNS, RELEVANCE]).to_pylist()


def text_search(table, text: str, where: str | None, limit: int) -> list[dict]:
    """BM25 alone: without CLIP the visual layer's vectors are image features, so its rows are found by their
    words (tags and on-screen text). A text the full-text parser rejects finds nothing here."""
    query = table.search(text, query_type="fts").limit(limit)
    if where:
        query = query.where(where, prefilter=True)
    try:
        return query.to_arrow().select(COLUMNS).to_pylist()
    except ValueError as error:
        log.debug("search.full_text_skipped table=%s query=%r reason=%s", table.name, text, error)
        return []


def _hit(row: dict, score: float) -> Hit:
    return Hit(
        bucket=row["bucket"], key=row["key"], etag=row["etag"], version_id=row["version_id"],
        object_id=row["object_id"], layer=row["layer"], modality=row["modality"], t_start=row["t_start"],
        t_end=row["t_end"], page=row["page"], text=row["text"], score=round(score, 6), extractor=row["extractor"],
    )
