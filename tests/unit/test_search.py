"""Hybrid search over a real LanceDB index: a row is found by its words, by its meaning, or by both (and
then ranks first); filters hold in both searches; a query the full-text parser refuses still answers.
Pictures are found by their tags alone, or with CLIP configured by their CLIP vectors too; an index made
with other CLIP settings is refused with what to change."""

from types import SimpleNamespace

import numpy as np
import pytest

from mediasift.extraction.layers import visual
from mediasift.extraction.layers.rows import Row
from mediasift.identity import ObjectVersion
from mediasift.query.search import Filters, Searcher
from mediasift.store.lance import LanceIndex
from mediasift.store.records import to_arrow

DIM = 8
QUERY = np.eye(DIM, dtype=np.float32)[0]
TALK = ObjectVersion("media", "talks/turbines.mp3", '"A1"')
CLIP = ObjectVersion("media", "harbour/clip.mp4", '"B2"')
SCAN = ObjectVersion("media", "harbour/invoice.pdf", '"C3"')
PHOTOS = ObjectVersion("media", "harbour/photos.pdf", '"D4"')


def unit(*weights: float) -> np.ndarray:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[: len(weights)] = weights
    return vector / np.linalg.norm(vector)


def sentence(modality: str, text: str, vector: np.ndarray) -> Row:
    return Row("transcript", modality, "sentence", text, t_start=1.0, t_end=2.0, vector=vector)


BOTH = "the turbine needs maintenance"
KEYWORD_ONLY = "turbine"
VECTOR_ONLY = "the generator hall was quiet"


class FixedTextEncoder:
    """Stands in for MiniLM: every text embeds to the same unit vector, so ranks are set by the rows."""

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.stack([QUERY for _ in texts])


@pytest.fixture
def searcher(tmp_path) -> Searcher:
    index = LanceIndex(str(tmp_path / "lance"))
    talk = [sentence("audio", BOTH, QUERY), sentence("audio", KEYWORD_ONLY, -QUERY)]
    talk += [sentence("audio", f"filler remark number {i}", unit(1.0, 1.0, 0.1 * i)) for i in range(30)]
    clip = [sentence("video", VECTOR_ONLY, unit(1.0, 0.05)), sentence("video", "a turbine on the quay", unit(0, 1))]
    index.replace_versions("transcript", [TALK.version_hash], [to_arrow(talk, TALK, "whisper@test")])
    index.replace_versions("transcript", [CLIP.version_hash], [to_arrow(clip, CLIP, "whisper@test")])
    scan = [Row("pages", "pdf", "page", "invoice for turbine maintenance", page=2, vector=QUERY)]
    index.replace_versions("pages", [SCAN.version_hash], [to_arrow(scan, SCAN, "ocr@test")])
    return Searcher(index, SimpleNamespace(text=FixedTextEncoder(), visual_clip=None))


def test_rows_found_by_keyword_only_and_by_vector_only_both_come_back_behind_a_row_found_by_both(searcher):
    hits = searcher.search("turbine maintenance", k=3, filters=Filters(layers=("transcript",)))
    texts = [hit.text for hit in hits]
    assert texts[0] == BOTH
    assert KEYWORD_ONLY in texts and VECTOR_ONLY in texts
    assert not any(text.startswith("filler") for text in texts)
    assert (hits[0].key, hits[0].etag, hits[0].t_start, hits[0].extractor) == (TALK.key, "a1", 1.0, "whisper@test")
    assert hits[0].score > hits[1].score


def test_modality_filter_excludes_other_modalities_from_both_searches(searcher):
    hits = searcher.search("turbine maintenance", k=10, filters=Filters(layers=("transcript",), modality="video"))
    assert {hit.modality for hit in hits} == {"video"}
    assert {hit.text for hit in hits} == {VECTOR_ONLY, "a turbine on the quay"}


def test_prefix_filter_excludes_keys_outside_the_prefix(searcher):
    hits = searcher.search("turbine maintenance", k=10, filters=Filters(prefix="harbour/"))
    assert {hit.key for hit in hits} == {CLIP.key, SCAN.key}
    assert searcher.search("turbine maintenance", filters=Filters(prefix="nothing/")) == []


def test_a_row_both_searches_of_its_layer_found_outranks_the_best_row_of_another_layer(searcher):
    """The layers' lists are fused on LanceDB's fused scores, not re-ranked by position: the top rows of
    two layers do not tie when only one of them was found by both searches."""
    hits = searcher.search("turbine maintenance", k=3, filters=Filters(layers=("transcript", "pages"),
                                                                        prefix="harbour/"))
    assert (hits[0].layer, hits[0].key, hits[0].page) == ("pages", SCAN.key, 2)
    assert hits[1].layer == "transcript" and hits[0].score > hits[1].score


@pytest.mark.parametrize("query", ["the of and", "?!", '"turbine maintenance"', ""])
def test_query_without_usable_words_still_returns_the_nearest_rows(searcher, query):
    hits = searcher.search(query, k=3, filters=Filters(layers=("transcript",)))
    assert [hit.text for hit in hits][0] == BOTH
    assert KEYWORD_ONLY not in [hit.text for hit in hits]


class FixedClip:
    """Stands in for CLIP's text tower: every query embeds to the same unit vector."""

    dim = DIM
    name = "test@fixed"
    extractor = f"clip:{name}"

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return np.stack([QUERY for _ in texts])


def picture(page: int, tags: str, clip_vector: np.ndarray | None) -> Row:
    return Row("visual", "pdf", "page", tags, page=page, vector=unit(0, 0, 1), clip_vector=clip_vector)


CAT, CRANE, SHIP = "tabby, tabby cat.", "crane.", "container ship, containership."


def index_pictures(tmp_path, with_clip: bool) -> LanceIndex:
    """Page 1's CLIP vector is nearest the query's, page 2 shares a word with it, page 3 neither."""
    vectors = [QUERY, unit(0, 1), unit(1, 4)] if with_clip else [None] * 3
    rows = [picture(page, tags, vector) for page, tags, vector in zip((1, 2, 3), (CAT, CRANE, SHIP), vectors,
                                                                    strict=True)]
    index = LanceIndex(str(tmp_path / "lance"))
    name = FixedClip.name if with_clip else None
    index.replace_versions("visual", [PHOTOS.version_hash], [to_arrow(rows, PHOTOS, visual.extractor(name))])
    return index


def picture_searcher(index: LanceIndex, clip: FixedClip | None) -> Searcher:
    return Searcher(index, SimpleNamespace(text=FixedTextEncoder(), visual_clip=clip))


def test_with_clip_pictures_are_found_by_meaning_and_one_whose_tags_match_too_ranks_first(tmp_path):
    searcher = picture_searcher(index_pictures(tmp_path, with_clip=True), FixedClip())
    hits = searcher.search("a crane on the dock", k=3, filters=Filters(layers=("visual",)))
    assert [hit.page for hit in hits] == [2, 1, 3]
    assert hits[0].score > hits[1].score > hits[2].score
    assert {hit.extractor for hit in hits} == {"efficientnet-lite0@imagenet+clip:test@fixed"}


def test_without_clip_pictures_are_found_by_their_tags_alone(tmp_path):
    searcher = picture_searcher(index_pictures(tmp_path, with_clip=False), None)
    hits = searcher.search("a crane on the dock", k=3, filters=Filters(layers=("visual",)))
    assert [(hit.page, hit.extractor) for hit in hits] == [(2, "efficientnet-lite0@imagenet")]


def test_search_with_clip_over_an_index_made_without_it_says_what_to_change(tmp_path):
    searcher = picture_searcher(index_pictures(tmp_path, with_clip=False), FixedClip())
    with pytest.raises(ValueError, match="made without CLIP vectors.*MEDIASIFT_CLIP_CHECKPOINT.*MEDIASIFT_LANCE_URI"):
        searcher.search("a crane on the dock", filters=Filters(layers=("visual",)))


@pytest.mark.parametrize(("made_with_clip", "clip_vector", "says"), [
    (False, unit(1.0), "was made without CLIP vectors and these rows are 8-d CLIP vectors"),
    (True, None, "holds 8-d CLIP vectors and these rows have none"),
    (True, np.ones(4, dtype=np.float32) / 2, "holds 8-d CLIP vectors and these rows are 4-d CLIP vectors"),
])
def test_index_refuses_rows_of_other_clip_settings_than_it_was_made_with(tmp_path, made_with_clip, clip_vector, says):
    index = index_pictures(tmp_path, with_clip=made_with_clip)
    other = ObjectVersion("media", "harbour/more.pdf", '"E5"')
    rows = to_arrow([picture(1, CRANE, clip_vector)], other, "efficientnet-lite0@imagenet")
    with pytest.raises(ValueError, match=says):
        index.replace_versions("visual", [other.version_hash], [rows])
    assert index.count("visual") == 3
