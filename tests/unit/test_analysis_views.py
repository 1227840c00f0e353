"""Batch views over a synthetic object table whose truth the test writes: three groups of pictures, an exact
copy, a near copy at cosine 0.99, an outlier, and documents of which two share their words. Rows are
written as the run path writes them, with the duplicate verdict each got arriving in order."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import HashingVectorizer

from mediasift.analysis import views
from mediasift.analysis.anomalies import score_arrival
from mediasift.analysis.duplicates import DuplicateIndex, duplicates_json, text_signature
from mediasift.analysis.objects import OBJECTS, ObjectRecord, ObjectSummary
from mediasift.analysis.taxonomy import parse_taxonomy
from mediasift.extraction.layers.rows import Row
from mediasift.extraction.models.imagenet import DIM as VISUAL_DIM
from mediasift.extraction.models.text import DIM as TEXT_DIM
from mediasift.identity import ObjectVersion
from mediasift.store.parquet import FeatureTables
from mediasift.store.records import to_arrow

GROUP_TAGS = (("tabby", "kitten"), ("retriever", "puppy"), ("sports car", "wheel"))
GROUP_SIZE = 12
REF_KEYS = {"bucket", "key", "etag", "object_id"}
TAXONOMY = """
version: 1
classify: {top_k: 2, min_score: 0.5}
gaps: {min_members: 3}
labels:
  - name: animals
    prompts: [animals]
    children:
      - {name: cat, prompts: [tabby]}
      - {name: dog, prompts: [retriever]}
  - name: vehicles
    prompts: [sports car]
  - name: boats
    prompts: [sailing boat]
rules:
  - {name: duplicate-upload, when: {duplicate: any}}
  - {name: unusual, when: {anomaly_over: 0.95}}
  - {name: launch-date, when: {phrase: launch date, layers: [transcript]}}
"""


class HashingEncoder:
    """Bag-of-words vectors: texts sharing words are close, a deterministic stand-in for MiniLM."""

    def __init__(self):
        self.vectorizer = HashingVectorizer(n_features=TEXT_DIM, alternate_sign=False)

    def embed(self, texts: list[str]) -> np.ndarray:
        rows = self.vectorizer.transform(texts).toarray().astype(np.float32)
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


@dataclass
class Truth:
    groups: list[list[str]]
    """Keys of each picture group (its copies included)."""
    exact: tuple[str, str]
    near: tuple[str, str]
    words: tuple[str, str]
    """(first, copy) of each duplicate pair."""
    outlier: str
    documents: list[str]


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def record(key: str, arrived: int, content: bytes, *, visual: np.ndarray | None = None, text: str = "",
           text_vector: np.ndarray | None = None, tags: tuple[str, ...] = ()) -> ObjectRecord:
    version = ObjectVersion("media", key, hashlib.md5(content).hexdigest())
    modality = "image" if visual is not None else "document"
    summary = ObjectSummary(visual=visual, text_vector=text_vector, text=text, tags=list(tags),
                            entities=[("PERSON", "Ada Lovelace")] if "Ada" in text else [])
    return ObjectRecord(version, arrived, modality, "image/jpeg" if visual is not None else "application/pdf",
                        len(content), hashlib.sha256(content).hexdigest(), summary,
                        text_signature=text_signature(text))


def synthetic_records(seed: int = 0) -> tuple[list[ObjectRecord], Truth]:
    rng = np.random.default_rng(seed)
    centres = unit(rng.normal(size=(3, VISUAL_DIM)))
    records: list[ObjectRecord] = []
    groups: list[list[str]] = [[], [], []]
    for g in range(3):
        for i in range(GROUP_SIZE):
            point = unit(centres[g] + rng.normal(size=VISUAL_DIM) / np.sqrt(VISUAL_DIM))
            key = f"g{g}/{i}.jpg"
            records.append(record(key, len(records), key.encode(), visual=point, tags=GROUP_TAGS[g]))
            groups[g].append(key)
    first, second = records[0], records[GROUP_SIZE]
    records.append(record("copies/g0-0.jpg", len(records), b"g0/0.jpg", visual=first.summary.visual,
                          tags=GROUP_TAGS[0]))
    orthogonal = rng.normal(size=VISUAL_DIM)
    orthogonal = unit(orthogonal - (orthogonal @ second.summary.visual) * second.summary.visual)
    edited = unit(0.99 * second.summary.visual + np.sqrt(1 - 0.99**2) * orthogonal)
    records.append(record("edits/g1-0.jpg", len(records), b"edited", visual=edited, tags=GROUP_TAGS[1]))
    groups[0].append("copies/g0-0.jpg")
    groups[1].append("edits/g1-0.jpg")
    records.append(record("odd/outlier.jpg", len(records), b"outlier", visual=unit(rng.normal(size=VISUAL_DIM))))
    memo = "the launch date of the product moves to june said Ada Lovelace in the weekly planning meeting"
    documents = [("docs/memo.pdf", memo), ("docs/memo-copy.pdf", memo),
                 ("docs/recipe.pdf", "whisk two eggs with sugar and fold in the flour before baking")]
    for key, words in documents:
        records.append(record(key, len(records), key.encode(), text=words,
                              text_vector=unit(HashingEncoder().embed([words])[0])))
    return records, Truth(groups, ("g0/0.jpg", "copies/g0-0.jpg"), ("g1/0.jpg", "edits/g1-0.jpg"),
                          ("docs/memo.pdf", "docs/memo-copy.pdf"), "odd/outlier.jpg", [k for k, _ in documents])


def write_table(derived: Path, seed: int = 0) -> tuple[list[ObjectRecord], Truth]:
    """The object table as runs write it: each row with the verdict it got arriving after the ones before."""
    records, truth = synthetic_records(seed)
    index = DuplicateIndex()
    tables = FeatureTables(derived)
    for r in records:
        r.verdict = index.arrive(r.fingerprint())
        tables.write(OBJECTS, r.version.object_id, r.version.version_hash, r.to_arrow())
    return records, truth


@pytest.fixture
def table(tmp_path) -> tuple[Path, list[ObjectRecord], Truth]:
    records, truth = write_table(tmp_path)
    return tmp_path, records, truth


def keys(refs) -> list[str]:
    return [r["key"] if isinstance(r, dict) else r.key for r in refs]


def test_replayed_verdicts_are_the_ones_stored_at_arrival(table):
    derived, records, _ = table
    objects = views.load_objects(derived)

    view = views.duplicate_view(objects)

    assert view.verdicts == views.stored_verdicts(objects)
    assert view.verdicts == {r.ref: r.verdict for r in records}
    assert view.differing == 0


def test_duplicate_groups_are_the_exact_and_near_copies_with_their_reasons(table):
    derived, _, truth = table
    groups = views.duplicate_view(views.load_objects(derived)).groups

    shown = duplicates_json(groups)

    found = {(g["kind"], g["representative"]["key"]): [(m["key"], m["reason"]) for m in g["members"]]
             for g in shown["groups"]}
    assert found == {
        ("exact", truth.exact[0]): [(truth.exact[0], None), (truth.exact[1], "sha256")],
        ("near", truth.near[0]): [(truth.near[0], None), (truth.near[1], "cosine:0.99")],
        ("near", truth.words[0]): [(truth.words[0], None), (truth.words[1], "jaccard:1.00")],
    }
    assert set(shown) == {"groups"}
    for g in shown["groups"]:
        assert set(g) == {"kind", "representative", "members"}
        assert set(g["representative"]) == REF_KEYS
        assert all(set(m) == REF_KEYS | {"reason"} for m in g["members"])


def test_duplicates_parquet_has_a_row_per_member_and_reads_back_as_the_same_groups(table, tmp_path):
    derived, _, _ = table
    groups = views.duplicate_view(views.load_objects(derived)).groups
    analysis = views.analysis_dir(derived)

    path = views.write_duplicates(analysis, groups)

    import polars as pl

    frame = pl.read_parquet(path)
    assert len(frame) == sum(len(g.members) for g in groups) == 6
    assert {"group", "kind", "representative_key", "key", "reason"} <= set(frame.columns)
    assert views.read_duplicates(analysis) == groups


def test_three_separated_groups_are_three_clusters_with_their_tags_and_keep_their_ids(table):
    derived, records, truth = table
    analysis = views.analysis_dir(derived)

    first, places = views.cluster_view(views.load_objects(derived), "visual")
    views.write_clusters(analysis, first, places)
    add_group_members(derived, records, truth, per_group=2)
    again, _ = views.cluster_view(views.load_objects(derived), "visual", views.previous_membership(analysis, "visual"))

    assert sorted(sorted(keys(c.members)) for c in first.clusters) == sorted(sorted(g) for g in truth.groups)
    assert keys(first.noise) == [truth.outlier]
    assert {c.keywords[:2] for c in first.clusters} == {tuple(sorted(t)) for t in GROUP_TAGS}
    assert {c.id: c.size + 2 for c in first.clusters} == {c.id: c.size for c in again.clusters}


def add_group_members(derived: Path, records: list[ObjectRecord], truth: Truth, per_group: int) -> None:
    """New pictures around each group's centre, arriving after the others."""
    rng = np.random.default_rng(7)
    by_key = {r.version.key: r for r in records}
    arrived = len(records)
    for g, members in enumerate(truth.groups):
        centre = unit(np.mean([by_key[k].summary.visual for k in members], axis=0))
        for i in range(per_group):
            point = unit(centre + rng.normal(size=VISUAL_DIM) / np.sqrt(VISUAL_DIM))
            new = record(f"more/g{g}-{i}.jpg", arrived, f"more{g}{i}".encode(), visual=point, tags=GROUP_TAGS[g])
            FeatureTables(derived).write(OBJECTS, new.version.object_id, new.version.version_hash, new.to_arrow())
            arrived += 1


def test_clusters_parquet_reads_back_as_the_same_json_with_gaps(table):
    derived, _, _ = table
    objects = views.load_objects(derived)
    taxonomy = parse_taxonomy(TAXONOMY)
    labels = views.classify_view(objects, taxonomy, HashingEncoder()).labels("unassigned")
    analysis = views.analysis_dir(derived)

    clustering, places = views.cluster_view(objects, "visual", taxonomy=taxonomy, labels=labels)
    views.write_clusters(analysis, clustering, places)
    shown = views.read_clusters(analysis, "visual").as_json()

    assert shown == clustering.as_json()
    assert set(shown) == {"space", "clusters", "noise", "gaps"}
    assert all(set(c) == {"id", "size", "label", "keywords", "representatives", "members"} for c in shown["clusters"])
    assert {c["label"] for c in shown["clusters"]} == {"animals/cat", "animals/dog", "vehicles"}
    assert any(g["kind"] == "few_members" and g["label"] == "boats" for g in shown["gaps"])
    assert all(len(c["representatives"]) == 3 and set(c["representatives"][0]) == REF_KEYS
               for c in shown["clusters"])


def test_too_few_text_objects_are_all_noise_in_the_text_space(table):
    derived, _, truth = table
    clustering, places = views.cluster_view(views.load_objects(derived), "text")

    assert clustering.clusters == ()
    assert sorted(keys(clustering.noise)) == sorted(truth.documents)
    assert set(places) == set(clustering.noise)


def test_rescoring_puts_the_outlier_first_and_appends_to_the_history(table):
    derived, _, truth = table
    objects = views.load_objects(derived)
    analysis = views.analysis_dir(derived)
    at = [datetime(2025, 1, day, tzinfo=UTC) for day in (1, 2)]

    for when in at:
        rescored = views.rescore_view(objects, "visual", at=when)
        length = views.append_history(analysis, rescored)
    shown = views.anomaly_view(objects, views.read_history(analysis), threshold=0.95, include_all=True)

    pictures = len(objects) - len(truth.documents)
    assert length == 2 * pictures
    assert {s.scored_at for s in views.read_history(analysis)} == set(at)
    assert shown["objects"][0]["key"] == truth.outlier and shown["objects"][0]["flagged"]
    assert len(shown["objects"]) == pictures
    assert {o["scored_at"] for o in shown["objects"]} == {at[1].isoformat()}
    assert set(shown) == {"threshold", "objects"}
    assert all(set(o) == REF_KEYS | {"score", "flagged", "scored_at"} for o in shown["objects"])
    flagged = views.anomaly_view(objects, views.read_history(analysis), threshold=0.95)
    assert [o["key"] for o in flagged["objects"]] == [truth.outlier]


def test_the_stored_reference_scores_an_arrival_as_the_fresh_one_does(table):
    derived, records, truth = table
    analysis = views.analysis_dir(derived)
    rescored = views.rescore_view(views.load_objects(derived), "visual")

    views.write_reference(analysis, rescored)
    loaded = views.load_reference(analysis, "visual")

    assert loaded.refs == rescored.reference.refs and loaded.k == rescored.reference.k
    np.testing.assert_allclose(loaded.own, rescored.reference.own)
    arrival = unit(records[0].summary.visual + np.random.default_rng(5).normal(size=VISUAL_DIM) / 36)
    for ref in (records[0].ref, record("new/one.jpg", 99, b"new", visual=arrival).ref):
        fresh = score_arrival(rescored.reference, ref, arrival)
        stored = score_arrival(loaded, ref, arrival)
        assert (stored.score, stored.distance) == pytest.approx((fresh.score, fresh.distance))
    assert views.load_reference(analysis, "text") is None


def test_a_space_with_too_few_objects_has_no_reference_and_its_stale_one_goes(table):
    derived, _, _ = table
    analysis = views.analysis_dir(derived)
    analysis.mkdir()
    views.reference_path(analysis, "text").write_bytes(b"stale")

    rescored = views.rescore_view(views.load_objects(derived), "text")

    assert rescored.reference is None and rescored.scores == []
    assert views.write_reference(analysis, rescored) is None
    assert views.load_reference(analysis, "text") is None


def test_an_arrival_after_the_rescore_counts_as_the_newest_score(table):
    derived, records, truth = table
    analysis = views.analysis_dir(derived)
    rescored = views.rescore_view(views.load_objects(derived), "visual", at=datetime(2025, 1, 1, tzinfo=UTC))
    views.append_history(analysis, rescored)
    views.write_reference(analysis, rescored)
    late = record("late/odd.jpg", len(records), b"late", visual=unit(np.random.default_rng(9).normal(size=VISUAL_DIM)))
    score = score_arrival(views.load_reference(analysis, "visual"), late.ref, late.summary.visual,
                          at=datetime(2025, 1, 2, tzinfo=UTC))
    late.anomaly = {"score": score.score, "distance": score.distance, "flagged": score.flagged,
                    "scored_at": score.scored_at, "reference_size": score.reference_size}
    FeatureTables(derived).write(OBJECTS, late.version.object_id, late.version.version_hash, late.to_arrow())

    shown = views.anomaly_view(views.load_objects(derived), views.read_history(analysis), include_all=True)

    newest = {o["key"]: o for o in shown["objects"]}
    assert newest["late/odd.jpg"]["score"] == pytest.approx(score.score)
    assert newest["late/odd.jpg"]["scored_at"] == "2025-01-02T00:00:00+00:00"


def test_reapplying_a_taxonomy_changes_nothing_and_a_changed_one_relabels_every_object(table):
    derived, _, truth = table
    objects = views.load_objects(derived)
    analysis = views.analysis_dir(derived)
    taxonomy = parse_taxonomy(TAXONOMY)

    first = views.classify_view(objects, taxonomy, HashingEncoder())
    assert views.write_classifications(analysis, first)
    written = (analysis / views.CLASSIFICATIONS).read_bytes()
    again = views.classify_view(objects, parse_taxonomy(TAXONOMY), HashingEncoder())
    changed = parse_taxonomy(TAXONOMY.replace("prompts: [tabby]", "prompts: [lion]"))
    relabelled = views.classify_view(objects, changed, HashingEncoder())

    assert not views.write_classifications(analysis, again)
    assert (analysis / views.CLASSIFICATIONS).read_bytes() == written
    assert views.is_classified(views.read_classifications(analysis), objects, taxonomy)
    assert not views.is_classified(views.read_classifications(analysis), objects, changed)
    assert views.write_classifications(analysis, relabelled)
    stored = views.read_classifications(analysis)
    assert stored.taxonomy == changed.fingerprint != taxonomy.fingerprint
    assert stored.as_json() == relabelled.as_json()
    assert len(stored.classifications) == len(objects)
    before = {c["key"]: [s["label"] for s in c["labels"]] for c in first.as_json()["objects"]}
    after = {c["key"]: [s["label"] for s in c["labels"]] for c in stored.as_json()["objects"]}
    assert before["g0/3.jpg"] == ["animals", "animals/cat"] and after["g0/3.jpg"] == ["unassigned"]
    assert before["g1/3.jpg"] == after["g1/3.jpg"] == ["animals", "animals/dog"]
    assert after[truth.outlier] == ["unassigned"]
    shown = stored.as_json()
    assert set(shown) == {"objects"}
    assert all(set(o) == REF_KEYS | {"labels"} and all(set(s) == {"label", "score"} for s in o["labels"])
               for o in shown["objects"])


def test_rules_flag_duplicates_the_outlier_and_a_phrase_said_in_a_transcript(table):
    derived, records, truth = table
    objects = views.load_objects(derived)
    rules = parse_taxonomy(TAXONOMY).rules
    memo = next(r for r in records if r.version.key == truth.words[0])
    FeatureTables(derived).write("transcript", memo.version.object_id, memo.version.version_hash, to_arrow(
        [Row("transcript", "document", "sentence", "we fixed the launch date", t_start=3.2)], memo.version, "t@1"))
    scores = views.current_scores(objects, views.rescore_view(objects, "visual").scores)
    text = views.layer_text(FeatureTables(derived), set(objects["version_hash"].to_list()))
    at = datetime(2025, 3, 1, tzinfo=UTC)

    raised = views.flag_view(objects, rules, scores, text, at=at)

    found = {(f.flag.ref.key, f.flag.rule) for f in raised}
    assert found == {(truth.exact[1], "duplicate-upload"), (truth.near[1], "duplicate-upload"),
                     (truth.words[1], "duplicate-upload"), (truth.outlier, "unusual"),
                     (truth.words[0], "launch-date")}
    said = next(f for f in raised if f.flag.rule == "launch-date")
    assert "at 3.2 s" in said.flag.reason
    shown = views.flags_json(raised)
    assert set(shown) == {"flags"}
    assert all(set(f) == REF_KEYS | {"rule", "reason", "at"} for f in shown["flags"])


def test_a_flag_keeps_the_time_it_was_first_raised(table):
    derived, _, _ = table
    objects = views.load_objects(derived)
    analysis = views.analysis_dir(derived)
    rules = parse_taxonomy(TAXONOMY).rules
    first = views.flag_view(objects, rules, [], at=datetime(2025, 3, 1, tzinfo=UTC))
    assert views.write_flags(analysis, first)

    later = views.flag_view(objects, rules, [], previous=views.read_flags(analysis),
                            at=datetime(2025, 4, 1, tzinfo=UTC))

    assert later == first and views.read_flags(analysis) == first
    assert not views.write_flags(analysis, later)
    assert {f.at for f in later} == {datetime(2025, 3, 1, tzinfo=UTC)}


def test_views_of_an_empty_table_are_empty(tmp_path):
    objects = views.load_objects(tmp_path)

    assert len(objects) == 0
    assert duplicates_json(views.duplicate_view(objects).groups) == {"groups": []}
    assert views.cluster_view(objects, "visual")[0].as_json() == {"space": "visual", "clusters": [], "noise": [],
                                                                  "gaps": []}
    assert views.anomaly_view(objects, [], include_all=True) == {"threshold": 0.99, "objects": []}
    assert views.classify_view(objects, parse_taxonomy(TAXONOMY), HashingEncoder()).as_json() == {"objects": []}
    assert views.flags_json(views.flag_view(objects, parse_taxonomy(TAXONOMY).rules, [])) == {"flags": []}
    assert views.read_duplicates(tmp_path) is None and views.read_history(tmp_path) is None


def test_objects_are_described_by_their_newest_version(table):
    derived, records, _ = table
    old = records[3]
    newer = record(old.version.key, 100, b"rewritten", visual=old.summary.visual, tags=GROUP_TAGS[0])
    FeatureTables(derived).write(OBJECTS, newer.version.object_id, newer.version.version_hash, newer.to_arrow())
    objects = views.load_objects(derived)

    described = views.newest_versions(objects)
    clustering, _ = views.cluster_view(objects, "visual")

    assert len(objects) == len(records) + 1 and len(described) == len(records)
    assert described.filter(described["key"] == old.version.key)["etag"].to_list() == [newer.version.etag]
    members = [m for c in clustering.clusters for m in c.members if m.key == old.version.key]
    assert [m.etag for m in members] == [newer.version.etag]
