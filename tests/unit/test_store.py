"""Feature tables and the LanceDB index: replace, never duplicate; removals leave nothing behind."""

import numpy as np

from mediasift.extraction.layers.rows import Row
from mediasift.identity import ObjectVersion
from mediasift.local.synthetic import embedding_like_vectors, synthetic_rows
from mediasift.query.search import fuse
from mediasift.store.lance import LanceIndex, VectorTuning
from mediasift.store.parquet import FeatureTables
from mediasift.store.records import to_arrow

VERSION = ObjectVersion("media", "docs/a b.pdf", '"ABC"')


def rows(texts: list[str]) -> list[Row]:
    vectors = embedding_like_vectors(len(texts), 384, seed=len(texts))
    return [Row("pages", "pdf", "page", text, page=i + 1, vector=vectors[i]) for i, text in enumerate(texts)]


def test_rerunning_a_version_replaces_its_rows(tmp_path):
    index = LanceIndex(str(tmp_path))
    h = [VERSION.version_hash]
    index.replace_versions("pages", h, [to_arrow(rows(["one", "two", "three"]), VERSION, "x@1")])
    index.replace_versions("pages", h, [to_arrow(rows(["uno", "dos"]), VERSION, "x@2")])
    table = index.table("pages").to_arrow().to_pylist()
    assert sorted(r["text"] for r in table) == ["dos", "uno"]
    assert {r["etag"] for r in table} == {"abc"} and {r["extractor"] for r in table} == {"x@2"}


def test_empty_rerun_and_removal_leave_nothing(tmp_path):
    index = LanceIndex(str(tmp_path))
    h = [VERSION.version_hash]
    index.replace_versions("pages", h, [to_arrow(rows(["one"]), VERSION, "x@1")])
    index.replace_versions("pages", h, [])
    assert index.count("pages") == 0
    index.replace_versions("pages", h, [to_arrow(rows(["one"]), VERSION, "x@1")])
    health = index.health("pages", h)
    assert (health.lineage.column("version_hash").to_pylist(), health.dim, health.clip_dim) == (h, 384, None)
    assert index.remove_versions([VERSION.version_hash, "no-such'version"]) == 1
    assert index.count("pages") == 0


def test_feature_table_files_are_replaced_whole_and_removed(tmp_path):
    tables = FeatureTables(tmp_path)
    path = tables.write("pages", VERSION.object_id, VERSION.version_hash,
                        to_arrow(rows(["a", "b"]), VERSION, "x@1"))
    tables.write("pages", VERSION.object_id, VERSION.version_hash, to_arrow(rows(["c"]), VERSION, "x@1"))
    assert tables.read("pages").column("text").to_pylist() == ["c"]
    assert not list(tmp_path.rglob("*.partial"))
    assert tables.remove("pages", VERSION.object_id, VERSION.version_hash) and not path.exists()


def test_vector_index_is_built_only_once_the_table_is_big_enough(tmp_path):
    index = LanceIndex(str(tmp_path), VectorTuning(min_rows_for_index=500, rows_per_partition=64))
    index.db.create_table("pages", synthetic_rows(embedding_like_vectors(400, 384)))
    assert not index.ensure_vector_index("pages")
    index.table("pages").add(synthetic_rows(embedding_like_vectors(200, 384, seed=5)))
    assert index.ensure_vector_index("pages")
    assert not index.ensure_vector_index("pages")
    assert any(ix.columns == ["vector"] for ix in index.table("pages").list_indices())


def test_reciprocal_rank_fusion_rewards_rows_found_by_both_searches():
    a = {"layer": "pages", "version_hash": "v", "row_no": 0}
    b = {"layer": "pages", "version_hash": "v", "row_no": 1}
    c = {"layer": "scenes", "version_hash": "w", "row_no": 0}
    fused = fuse([[a, b], [c, b]])
    assert [row for row, _ in fused][0] == b
    assert np.isclose(fused[0][1], 1 / 62 + 1 / 62)


def test_fusion_across_layers_keeps_the_score_lancedb_fused_within_a_layer():
    found_by_both = {"layer": "pages", "version_hash": "v", "row_no": 0, "_relevance_score": 1 / 61 + 1 / 61}
    found_by_vector = {"layer": "transcript", "version_hash": "w", "row_no": 0, "_relevance_score": 1 / 61}
    visual = {"layer": "visual", "version_hash": "x", "row_no": 0}
    fused = fuse([[found_by_vector], [found_by_both], [visual]])
    assert [row["layer"] for row, _ in fused] == ["pages", "transcript", "visual"]
    assert np.isclose(fused[0][1], 2 / 61) and np.isclose(fused[2][1], 1 / 61)
