"""A LanceDB cleanup after snapshots keeps every tagged version readable: all its rows, and its full-text
index. Lance has stranded files on cleanup with tags (lance#8705), and LanceDB 0.40 refuses a cleanup whose
window holds a tagged version, so mediasift's cleanup shrinks the window instead."""

from __future__ import annotations

import time
from datetime import timedelta

import pyarrow as pa
import pytest

from mediasift.store.lance import LanceIndex, PinnedIndex, cleanup_keeping_tags, delete_tag, tag_tables

LAYER = "transcript"


def rows(version_hash: str, *texts: str) -> pa.Table:
    return pa.table({"version_hash": [version_hash] * len(texts), "row_no": list(range(len(texts))),
                     "text": list(texts),
                     "vector": pa.array([[float(i), 1.0] for i in range(len(texts))], pa.list_(pa.float32(), 2))})


def contents(index: LanceIndex) -> set[tuple]:
    table = index.table(LAYER)
    return {(r["version_hash"], r["row_no"], r["text"]) for r in table.to_arrow().to_pylist()}


def finds(index: LanceIndex, word: str) -> set[str]:
    return {r["text"] for r in index.table(LAYER).search(word, query_type="fts").limit(20).to_list()}


@pytest.fixture
def history(tmp_path) -> tuple[LanceIndex, dict[str, set[tuple]]]:
    """Two snapshots with overwrites and deletes between and after them; what each tag must still read."""
    index = LanceIndex(str(tmp_path / "lance"))
    index.replace_versions(LAYER, ["v1", "v2"], [rows("v1", "draft"), rows("v2", "old invoice")])
    time.sleep(1.5)  # the versions before the first tag must be older than cleanup's 1 s margin before it
    index.replace_versions(LAYER, ["v1"], [rows("v1", "harbour at dawn", "gulls")])
    tag_tables(index, "snapshot-first")
    expected = {"snapshot-first": contents(index)}
    time.sleep(1.5)
    index.replace_versions(LAYER, ["v1"], [rows("v1", "harbour at noon")])
    index.remove_versions(["v2"])
    index.replace_versions(LAYER, ["v3"], [rows("v3", "new contract", "signature page")])
    tag_tables(index, "snapshot-second")
    expected["snapshot-second"] = contents(index)
    index.replace_versions(LAYER, ["v3"], [rows("v3", "contract, amended")])
    index.remove_versions(["v1"])
    return index, expected


def test_lancedb_refuses_a_cleanup_over_tagged_versions_and_they_stay_readable(history):
    index, expected = history
    with pytest.raises(RuntimeError, match="tagged version"), pytest.warns(UserWarning, match="removes every"):
        index.table(LAYER).optimize(cleanup_older_than=timedelta(0), delete_unverified=True)
    for tag, held in expected.items():
        assert contents(PinnedIndex(index.uri, tag)) == held


def test_cleanup_keeping_tags_removes_older_versions_and_every_tag_reads_all_rows(history):
    index, expected = history
    drafts = {v["version"] for v in index.table(LAYER).list_versions() if v["metadata"]["total_rows"] == "2"
              and v["version"] < index.table(LAYER).tags.list()["snapshot-first"]["version"]}

    cleanup_keeping_tags(index, timedelta(0), delete_unverified=True)

    assert drafts and not drafts & {v["version"] for v in index.table(LAYER).list_versions()}, \
        "the versions from before the first snapshot are gone"
    for tag, held in expected.items():
        assert contents(PinnedIndex(index.uri, tag)) == held
    assert finds(PinnedIndex(index.uri, "snapshot-first"), "harbour") == {"harbour at dawn"}
    assert finds(PinnedIndex(index.uri, "snapshot-first"), "invoice") == {"old invoice"}
    assert finds(PinnedIndex(index.uri, "snapshot-second"), "contract") == {"new contract"}
    assert contents(index) == {("v3", 0, "contract, amended")}


def test_once_a_tag_is_deleted_its_versions_are_cleaned_and_the_later_tag_still_reads(history):
    index, expected = history
    first = index.table(LAYER).tags.list()["snapshot-first"]["version"]
    delete_tag(index, "snapshot-first")

    cleanup_keeping_tags(index, timedelta(0), delete_unverified=True)

    assert min(v["version"] for v in index.table(LAYER).list_versions()) > first
    assert PinnedIndex(index.uri, "snapshot-first").table(LAYER) is None
    assert contents(PinnedIndex(index.uri, "snapshot-second")) == expected["snapshot-second"]
    assert finds(PinnedIndex(index.uri, "snapshot-second"), "signature") == {"signature page"}


def test_tagging_is_all_or_nothing(tmp_path):
    index = LanceIndex(str(tmp_path / "lance"))
    index.replace_versions("pages", ["p"], [rows("p", "page one")])
    index.replace_versions(LAYER, ["t"], [rows("t", "words")])
    index.table(LAYER).tags.create("snapshot-taken", 1)
    with pytest.raises(RuntimeError):
        tag_tables(index, "snapshot-taken")
    assert "snapshot-taken" not in index.table("pages").tags.list()
