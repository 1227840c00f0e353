"""Feature tables and the LanceDB index: replace, never duplicate; removals leave nothing behind."""

import multiprocessing
from pathlib import Path

import numpy as np
import pyarrow as pa

from mediasift.extraction.layers.rows import Row
from mediasift.identity import ObjectVersion
from mediasift.inbox import Inbox
from mediasift.local.synthetic import embedding_like_vectors, synthetic_rows
from mediasift.query.search import fuse
from mediasift.store import RowStores
from mediasift.store.lance import KEEP_EVERY_VERSION, LanceIndex, VectorTuning
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


def test_a_scan_with_the_known_schema_reads_files_of_an_older_schema_as_null(tmp_path):
    tables = FeatureTables(tmp_path)
    schema = pa.schema([("version_hash", pa.string()), ("size", pa.int64()), ("labels", pa.list_(pa.string()))])
    tables.write("objects", "o1", "v1", pa.table({"version_hash": ["v1"], "size": [5]}))
    tables.write("objects", "o2", "v2", pa.table({"version_hash": ["v2"], "size": [7], "labels": [["cat"]]},
                                                 schema=schema))
    rows = tables.scan("objects", schema).sort("version_hash").collect().to_dicts()
    assert rows == [{"version_hash": "v1", "size": 5, "labels": None},
                    {"version_hash": "v2", "size": 7, "labels": ["cat"]}]


def test_vector_index_is_built_only_once_the_table_is_big_enough(tmp_path):
    index = LanceIndex(str(tmp_path), VectorTuning(min_rows_for_index=500, rows_per_partition=64))
    index.db.create_table("pages", synthetic_rows(embedding_like_vectors(400, 384)))
    assert not index.ensure_vector_index("pages")
    index.table("pages").add(synthetic_rows(embedding_like_vectors(200, 384, seed=5)))
    assert index.ensure_vector_index("pages")
    assert not index.ensure_vector_index("pages")
    assert any(ix.columns == ["vector"] for ix in index.table("pages").list_indices())


def test_building_the_vector_index_removes_no_version(tmp_path, monkeypatch):
    """LanceDB's own optimize would remove the untagged versions over 7 days old (what `--as-of` reads) and
    refuse once a snapshot's tag is that old; the table's clock cannot be turned back here, so what the build
    asks of optimize is checked, with what it leaves."""
    index = LanceIndex(str(tmp_path), VectorTuning(min_rows_for_index=100, rows_per_partition=64))
    index.db.create_table("pages", synthetic_rows(embedding_like_vectors(200, 384)))
    before = {v["version"] for v in index.table("pages").list_versions()}
    table_type, windows = type(index.table("pages")), []
    optimize = table_type.optimize

    def spy(self, **kwargs):
        windows.append(kwargs.get("cleanup_older_than"))
        return optimize(self, **kwargs)

    monkeypatch.setattr(table_type, "optimize", spy)
    assert index.ensure_vector_index("pages")
    assert windows == [KEEP_EVERY_VERSION]
    assert before <= {v["version"] for v in index.table("pages").list_versions()}


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


def _write_versions(uri: str, inbox_url: str, writer: int, start, count: int) -> list[str]:
    """One process's index writes, begun together with the others', as a run makes them; the errors it met."""
    index, errors = RowStores.at(Path(uri) / "derived", uri, Inbox(inbox_url)).index, []
    assert index.db is not None, "connected before the start, so that the writes do race"
    start.wait()
    for i in range(count):
        version = ObjectVersion("media", f"writer{writer}/{i}.pdf", f"etag-{writer}-{i}")
        try:
            table = to_arrow(rows([f"page {writer} {i}"]), version, "x@1")
            index.replace_versions("pages", [version.version_hash], [table])
        except Exception as error:
            errors.append(f"{type(error).__name__}: {error}")
    return errors


def test_runs_writing_one_fresh_index_at_once_all_land(tmp_path):
    """Batch runs write the same tables from their own processes, the first ones into an index that does not
    exist yet. Unguarded, LanceDB commits the losing creates as Overwrites that wipe the winner's rows, and
    concurrent text-index builds preempt each other. The race is lost only now and then, so it is run on
    several fresh indexes."""
    writers, count, trials = 4, 5, 6
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(writers) as pool:
        for trial in range(trials):
            uri = str(tmp_path / f"index{trial}")
            start = manager.Barrier(writers)
            inbox_url = f"sqlite:///{tmp_path / f'inbox{trial}.db'}"
            errors = pool.starmap(_write_versions, [(uri, inbox_url, w, start, count) for w in range(writers)])
            assert errors == [[]] * writers, f"trial {trial}"
            index = LanceIndex(uri)
            assert index.count("pages") == writers * count
            assert [ix.columns for ix in index.table("pages").list_indices()] == [["text"]]


def test_compaction_bounds_fragments_and_keeps_every_row_and_tagged_version(tmp_path):
    index = LanceIndex(str(tmp_path), VectorTuning(max_fragments=4))
    versions = [ObjectVersion("media", f"docs/{i}.pdf", f'"{i}"') for i in range(8)]
    for i, version in enumerate(versions):
        index.replace_versions("pages", [version.version_hash], [to_arrow(rows([f"page {i}"] * 2), version, "x@1")])
        if i == 2:
            index.table("pages").tags.create("before", index.table("pages").version)
    assert index.table("pages").stats()["fragment_stats"]["num_fragments"] == 8
    assert index.compact("pages")
    assert index.table("pages").stats()["fragment_stats"]["num_fragments"] == 1
    assert not index.compact("pages"), "nothing to do under the limit"
    assert [index.count("pages", f"version_hash = '{v.version_hash}'") for v in versions] == [2] * 8
    pinned = index.table("pages")
    pinned.checkout("before")
    assert pinned.count_rows() == 6, "a snapshot's tagged version is still readable"
    found = index.table("pages").search("page", query_type="fts").limit(20).to_arrow()
    assert found.num_rows == 16, "full-text search still finds every row"
