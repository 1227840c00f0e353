"""What a row must be to become searchable: the verdicts the gate and the layer checks share."""

import numpy as np

from mediasift.config import Settings
from mediasift.extraction.layers.rows import Row
from mediasift.identity import ObjectVersion
from mediasift.store.expectations import RowExpectations
from mediasift.store.lance import LanceIndex
from mediasift.store.records import to_arrow

VERSION = ObjectVersion("media", "docs/a b.pdf", '"ABC"')
OTHER = ObjectVersion("media", "docs/other.pdf", '"DEF"')


def picture(dim: int, clip: int | None = None) -> Row:
    return Row("visual", "image", "image", "a tabby cat", vector=np.ones(dim, np.float32),
               clip_vector=None if clip is None else np.ones(clip, np.float32))


def page(text: str) -> Row:
    return Row("pages", "pdf", "page", text, page=1, vector=np.ones(384, np.float32))


def test_vectors_of_another_size_are_named_with_the_numbers():
    expected = RowExpectations()
    assert expected.failed_vectors({"visual": [picture(1280)], "pages": [page("fine")]}) == []
    (verdict,) = expected.failed_vectors({"visual": [picture(3), picture(3)], "pages": [page("fine")]})
    assert verdict.reason == "vector_dimensions: visual rows have 3-d vectors, expected 1280"
    assert verdict.facts == {"dim": 3, "expected": 1280, "clip_dim": 0, "expected_clip": 0}
    (mixed,) = expected.failed_vectors({"visual": [picture(1280), picture(3)]})
    assert mixed.problem == "visual rows have 3-d and 1280-d vectors, expected 1280"


def test_clip_vectors_are_expected_exactly_where_clip_is_configured():
    with_clip = RowExpectations.from_settings(Settings(clip_pretrained="untrained"))
    assert with_clip.clip_dim == 512
    assert with_clip.failed_vectors({"visual": [picture(1280, 512)]}) == []
    (missing,) = with_clip.failed_vectors({"visual": [picture(1280)]})
    assert missing.problem == "visual rows have no CLIP vectors, expected 512-d"
    (unasked,) = RowExpectations.from_settings(Settings()).failed_vectors({"visual": [picture(1280, 512)]})
    assert unasked.problem == "visual rows have 512-d CLIP vectors, expected none (no CLIP is configured)"


def test_rows_stored_for_another_version_or_without_lineage_fail():
    expected = RowExpectations()
    table = to_arrow([page("one"), page("two")], VERSION, "pypdfium2")
    assert expected.failed_lineage(VERSION, {"pages": [table]}) == []
    (foreign,) = expected.failed_lineage(OTHER, {"pages": [table]})
    assert foreign.facts == {"rows_without_lineage": 2}
    blanked = table.set_column(table.schema.get_field_index("etag"), "etag", [["abc", None]])
    (blank,) = expected.failed_lineage(VERSION, {"pages": [blanked]})
    assert blank.problem.startswith("1 of 2 pages rows lack their lineage")


def test_the_index_is_judged_per_version_and_a_removed_version_must_leave_nothing(tmp_path):
    index = LanceIndex(str(tmp_path))
    index.replace_versions("pages", [VERSION.version_hash], [to_arrow([page("one")], VERSION, "pypdfium2")])
    held = index.health("pages", [VERSION.version_hash, OTHER.version_hash])
    verdicts = RowExpectations().judge_index("pages", held, [VERSION, OTHER], removed={VERSION.version_hash})
    passed = {h: {v.check: v.passed for v in found} for h, found in verdicts.items()}
    assert passed == {
        VERSION.version_hash: {"rows_have_lineage": True, "vector_dimensions": True,
                               "no_rows_for_removed_versions": False},
        OTHER.version_hash: {"rows_have_lineage": True, "vector_dimensions": True,
                             "no_rows_for_removed_versions": True},
    }
