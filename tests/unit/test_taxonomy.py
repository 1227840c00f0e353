"""Taxonomy files, classification and rule flags, on texts and facts whose truth the test writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import HashingVectorizer

from mediasift.analysis.reference import ObjectRef
from mediasift.analysis.taxonomy import (
    Entity,
    Evidence,
    ObjectFacts,
    TaxonomyError,
    TextRow,
    classify_all,
    evaluate_rules,
    labels_by_object,
    load_taxonomy,
    parse_taxonomy,
)
from mediasift.identity import object_id

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "taxonomy.yaml"

TOPICS = {
    "cat": [
        "My cat sleeps on the sofa all afternoon.",
        "The kitten chased a ball of yarn across the floor.",
        "Our cat purrs loudly whenever she is brushed.",
        "A stray cat waited by the kitchen door for milk.",
        "The kitten climbed the curtains and could not get down.",
        "A cat grooms its fur with a rough tongue.",
        "The old tabby cat hissed at the neighbour's kitten.",
        "She adopted a cat from the shelter last spring.",
        "The cat knocked a glass off the table on purpose.",
        "A kitten needs several small meals every day.",
    ],
    "dog": [
        "The dog fetched the stick from the lake.",
        "Our puppy chewed through my new shoes.",
        "He walks the dog in the park every morning.",
        "The puppy wagged its tail at the postman.",
        "A trained dog can guide a blind person across the street.",
        "The dog barked at the thunder all night.",
        "The puppy learned to sit after one week of training.",
        "A dog loves to dig holes in the garden.",
        "The shepherd dog herded the sheep into the pen.",
        "Her puppy slept curled up in a basket.",
    ],
    "football": [
        "The striker scored a goal in the final minute of the football match.",
        "The football team trained on a muddy pitch.",
        "The referee showed a red card to the defender during the football game.",
        "Fans sang in the stadium as the football match began.",
        "The goalkeeper saved a penalty kick in the football final.",
        "Their football club signed a new midfielder.",
        "The football league table changed after the weekend.",
        "A header from the corner gave the football side the lead.",
        "The football coach changed tactics at half time.",
        "The football derby ended in a goalless draw.",
    ],
    "tennis": [
        "She won the tennis match in three sets.",
        "His tennis serve reached two hundred kilometres an hour.",
        "The tennis player argued with the umpire about a line call.",
        "Rain stopped the tennis final at Wimbledon.",
        "They play tennis on the clay court every Sunday.",
        "The tennis racket string snapped during the rally.",
        "A tennis tiebreak decided the second set.",
        "The young tennis player reached the quarter final.",
        "He practised his tennis backhand against a wall.",
        "The doubles tennis pair won the tournament.",
    ],
}
OFF_TOPIC = [
    "Interest rates rose by a quarter of a percent.",
    "The committee approved the budget for next year.",
    "Heavy fog delayed flights at the airport.",
    "The printer on the third floor is out of toner.",
    "Quarterly revenue exceeded the analysts' forecast.",
]

TAXONOMY = """
classify: {top_k: 2, min_score: 0.3}
labels:
  - name: animals
    children:
      - {name: cat, prompts: [cat, kitten]}
      - {name: dog, prompts: [dog, puppy]}
  - name: sport
    children:
      - {name: football, prompts: [football]}
      - {name: tennis, prompts: [tennis]}
"""


class HashingEncoder:
    """A deterministic bag-of-words encoder: L2-normalised hashed word counts (shared words, high cosine)."""

    def __init__(self):
        self.vectorizer = HashingVectorizer(n_features=2**16, alternate_sign=False, stop_words="english")

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.vectorizer.transform(texts).toarray().astype(np.float32)


def ref(key: str, etag: str = "e1", bucket: str = "media") -> ObjectRef:
    return ObjectRef(bucket, key, etag, object_id(bucket, key))


def documents(encoder) -> tuple[list[Evidence], dict[str, str]]:
    """One object per sentence, its text row embedded; and each object's true topic (None: off topic)."""
    truth: dict[str, str | None] = {}
    objects = []
    sentences = [(t, s) for t, group in TOPICS.items() for s in group] + [(None, s) for s in OFF_TOPIC]
    for i, (topic, sentence) in enumerate(sentences):
        rows = encoder.embed([sentence])
        objects.append(Evidence(ref(f"docs/{i}.txt"), text_rows=rows, embeddings={"text": rows.mean(0)}))
        truth[objects[-1].ref.key] = topic
    return objects, truth


PARENT = {"cat": "animals", "dog": "animals", "football": "sport", "tennis": "sport"}


def assert_topics_found(classified, truth) -> None:
    for c in classified:
        names = [s.label for s in c.labels]
        topic = truth[c.ref.key]
        if topic is None:
            assert names == ["unassigned"], (c.ref.key, names)
        else:
            assert f"{PARENT[topic]}/{topic}" in names, (c.ref.key, names)
            assert PARENT[topic] in names, "a child label implies its parent"
            assert set(names) <= {PARENT[topic], f"{PARENT[topic]}/{topic}"}, (c.ref.key, names)


def test_hierarchical_taxonomy_classifies_topics_and_leaves_off_topic_unassigned():
    encoder = HashingEncoder()
    objects, truth = documents(encoder)

    classified = classify_all(objects, parse_taxonomy(TAXONOMY), encoder)

    assert_topics_found(classified, truth)
    parent = next(s for s in classified[0].labels if s.label == "animals")
    child = next(s for s in classified[0].labels if s.label == "animals/cat")
    assert parent.score == child.score, "an implied parent carries its child's score"


def test_min_score_and_top_k_limit_the_labels():
    encoder = HashingEncoder()
    row = encoder.embed(["the cat and the dog played football"])
    obj = Evidence(ref("mixed.txt"), text_rows=row)
    loose = parse_taxonomy(TAXONOMY.replace("top_k: 2, min_score: 0.3", "top_k: 3, min_score: 0.1"))
    one = parse_taxonomy(TAXONOMY.replace("top_k: 2, min_score: 0.3", "top_k: 1, min_score: 0.1"))
    strict = parse_taxonomy(TAXONOMY.replace("top_k: 2, min_score: 0.3", "top_k: 3, min_score: 0.9"))

    (wide,) = classify_all([obj], loose, encoder)
    (narrow,) = classify_all([obj], one, encoder)
    (none,) = classify_all([obj], strict, encoder)

    assert {s.label for s in wide.labels} == {"animals", "animals/cat", "animals/dog", "sport", "sport/football"}
    assert len([s for s in narrow.labels if "/" in s.label]) == 1
    assert [(s.label, s.score) for s in none.labels] == [("unassigned", None)]


def test_examples_define_a_label_by_the_centroid_of_their_embeddings():
    rng = np.random.default_rng(0)
    centre = rng.normal(size=64)
    near = [centre + 0.3 * rng.normal(size=64) for _ in range(4)]
    far = [rng.normal(size=64) for _ in range(4)]
    objects = [Evidence(ref(f"contracts/{i}.pdf"), embeddings={"visual": v}) for i, v in enumerate(near)]
    objects += [Evidence(ref(f"misc/{i}.jpg"), embeddings={"visual": v}) for i, v in enumerate(far)]
    taxonomy = parse_taxonomy("""
labels:
  - {name: contracts, examples: [contracts/0.pdf, "s3://media/contracts/1.pdf"], min_score: 0.6}
""")

    classified = classify_all(objects, taxonomy, HashingEncoder())

    assert [c.labels[0].label for c in classified] == ["contracts"] * 4 + ["unassigned"] * 4


def test_a_prompt_and_a_visual_tag_naming_each_other_match():
    taxonomy = parse_taxonomy("labels: [{name: cat, prompts: [cat]}, {name: dog, prompts: [a golden retriever]}]")
    objects = [Evidence(ref("a.jpg"), tags=("Egyptian cat", "sofa")),
               Evidence(ref("b.jpg"), tags=("golden retriever",)),
               Evidence(ref("c.jpg"), tags=("catamaran", "retrieverless"))]

    classified = classify_all(objects, taxonomy, HashingEncoder())

    assert [[s.label for s in c.labels] for c in classified] == [["cat"], ["dog"], ["unassigned"]]


def test_changed_taxonomy_relabels_and_the_same_one_changes_nothing():
    encoder = HashingEncoder()
    objects, _ = documents(encoder)
    taxonomy = parse_taxonomy(TAXONOMY)
    changed = parse_taxonomy(TAXONOMY.replace("{name: tennis, prompts: [tennis]}", "{name: racket, prompts: [tennis]}"))

    first = [c.as_json() for c in classify_all(objects, taxonomy, encoder)]
    again = [c.as_json() for c in classify_all(objects, parse_taxonomy(TAXONOMY), encoder)]
    relabelled = [c.as_json() for c in classify_all(objects, changed, encoder)]

    assert json.dumps(first) == json.dumps(again)
    assert changed.fingerprint != taxonomy.fingerprint
    tennis = [c for c in relabelled if any(s["label"] == "sport/racket" for s in c["labels"])]
    assert len(tennis) == len(TOPICS["tennis"])
    assert all(s["label"] != "sport/tennis" for c in relabelled for s in c["labels"])


def test_fingerprint_ignores_comments_and_layout():
    taxonomy = parse_taxonomy(TAXONOMY)
    reformatted = parse_taxonomy("# the same taxonomy, written out longhand\n" + """
classify:
  top_k: 2
  min_score: 0.3
  unassigned: unassigned
labels:
  - name: animals
    children:
      - name: cat
        prompts: [cat, kitten]   # either word
      - name: dog
        prompts: [dog, puppy]
  - name: sport
    children:
      - {name: football, prompts: football}
      - {name: tennis, prompts: [tennis]}
""")

    assert reformatted.fingerprint == taxonomy.fingerprint


def test_labels_by_object_keeps_parents_and_drops_the_fallback():
    encoder = HashingEncoder()
    objects, truth = documents(encoder)

    labels = labels_by_object(classify_all(objects, parse_taxonomy(TAXONOMY), encoder), "unassigned")

    cat = next(o.ref.object_id for o in objects if truth[o.ref.key] == "cat")
    off = next(o.ref.object_id for o in objects if truth[o.ref.key] is None)
    assert labels[cat] == {"animals", "animals/cat"}
    assert labels[off] == frozenset()


def test_the_example_taxonomy_file_loads():
    taxonomy = load_taxonomy(EXAMPLE)

    assert "animals/cat" in dict(taxonomy.label_tree())
    assert {r.name for r in taxonomy.rules} >= {"pii-person", "unusual", "duplicate-upload"}


@pytest.mark.parametrize(("text", "line", "field", "words"), [
    ("labels:\n  - name: a\n    promtps: [x]\n", 3, "labels[0].promtps", "Extra inputs"),
    ("labels:\n  - name: a\n    prompts: [x]\n    children:\n      - {name: b, prompts: [y], target_share: 1.5}\n",
     5, "labels[0].children[0].target_share", "less than or equal to 1"),
    ("labels:\n  - name: a\n", 2, "labels[0]", "no prompts, examples or children"),
    ("rules:\n  - name: r\n    when:\n      regex: '('\n", 4, "rules[0].when.regex", "invalid regular expression"),
    ("rules:\n  - name: r\n    when: {}\n", 3, "rules[0].when", "at least one condition"),
    ("labels:\n  - {name: a, prompts: [x]}\n  - {name: a, prompts: [y]}\n", 2, "labels", "duplicate names"),
    ("labels:\n  - name: a/b\n    prompts: [x]\n", 2, "labels[0].name", "children"),
])
def test_invalid_taxonomy_names_line_and_field(text, line, field, words):
    with pytest.raises(TaxonomyError) as caught:
        parse_taxonomy(text, "tax.yaml")

    assert (caught.value.line, caught.value.field) == (line, field)
    assert words in str(caught.value) and str(caught.value).startswith(f"tax.yaml:{line}: {field}: ")


def test_malformed_yaml_and_missing_file_say_so(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("labels:\n  - name: a\n  prompts: [x\n")

    with pytest.raises(TaxonomyError, match=r"broken\.yaml:\d+: invalid YAML"):
        load_taxonomy(broken)
    with pytest.raises(TaxonomyError, match=r"absent\.yaml: cannot read"):
        load_taxonomy(tmp_path / "absent.yaml")
    with pytest.raises(TaxonomyError, match="expected a mapping"):
        parse_taxonomy("- just\n- a list\n")


RULES = parse_taxonomy(EXAMPLE.read_text()).rules


def flags_of(facts: ObjectFacts) -> dict[str, str]:
    return {f.rule: f.reason for f in evaluate_rules(RULES, facts)}


def test_a_document_naming_a_person_is_flagged_with_where():
    named = ObjectFacts(ref("letters/1.pdf"), entities=(Entity("ORG", "Analytical Engine Ltd", page=1),
                                                        Entity("PERSON", "Ada  lovelace", "pages", page=2)))
    other = ObjectFacts(ref("letters/2.pdf"), entities=(Entity("PERSON", "Charles Babbage", page=1),
                                                        Entity("ORG", "Ada Lovelace", page=3)))

    assert flags_of(named) == {"pii-person": "rule:pii-person: PERSON 'Ada  lovelace' on page 2"}
    assert flags_of(other) == {}


def test_a_transcript_saying_a_phrase_is_flagged_and_other_layers_are_not():
    said = ObjectFacts(ref("calls/1.ogg"), text=(TextRow("transcript", "hello everyone"),
                                                 TextRow("transcript", "the launch\ndate is in May", t_start=3.2)))
    written = ObjectFacts(ref("docs/1.pdf"), text=(TextRow("pages", "the launch date is in May", page=1),))
    near_miss = ObjectFacts(ref("calls/2.ogg"), text=(TextRow("transcript", "the relaunch dates moved"),))

    assert flags_of(said) == {
        "launch-date-mentioned": "rule:launch-date-mentioned: 'launch date' in transcript at 3.2 s"}
    assert flags_of(written) == {}
    assert flags_of(near_miss) == {}


def test_a_regex_matches_in_any_text_layer():
    facts = ObjectFacts(ref("forms/1.pdf"), text=(TextRow("pages", "name: A. N. Other", page=1),
                                                  TextRow("pages", "SSN 078-05-1120, signed", page=2)))

    assert flags_of(facts) == {
        "social-security-number": r"rule:social-security-number: /\b\d{3}-\d{2}-\d{4}\b/ ('078-05-1120') on page 2"}


def test_content_type_size_and_prefix_must_all_hold():
    big = 12_000_000
    hit = ObjectFacts(ref("contracts/a.pdf"), content_type="application/pdf; charset=binary", size=big)
    misses = [ObjectFacts(ref("invoices/a.pdf"), content_type="application/pdf", size=big),
              ObjectFacts(ref("contracts/b.pdf"), content_type="application/pdf", size=9_999_999),
              ObjectFacts(ref("contracts/c.png"), content_type="image/png", size=big),
              ObjectFacts(ref("contracts/d.pdf"), content_type="application/pdf")]

    assert flags_of(hit) == {"large-contract-pdf": "rule:large-contract-pdf: content type application/pdf; "
                                                   "key under 'contracts/'; size 12000000 ≥ 10000000"}
    assert [flags_of(m) for m in misses] == [{}, {}, {}, {}]


def test_anomaly_over_threshold_and_duplicates_are_flagged():
    original = ref("photos/original.jpg")
    odd = ObjectFacts(ref("photos/odd.jpg"), anomaly_score=0.995)
    usual = [ObjectFacts(ref("photos/edge.jpg"), anomaly_score=0.99), ObjectFacts(ref("photos/new.jpg"))]
    copy = ObjectFacts(ref("photos/copy.jpg"), duplicate_of=original, duplicate_kind="near")
    exact_only = parse_taxonomy("rules:\n  - {name: same-bytes, when: {duplicate: exact}}\n").rules

    assert flags_of(odd) == {"unusual": "rule:unusual: anomaly 0.995 > 0.99"}
    assert [flags_of(u) for u in usual] == [{}, {}]
    assert flags_of(copy) == {"duplicate-upload": "rule:duplicate-upload: near duplicate of s3://media/photos/original.jpg"}
    assert evaluate_rules(exact_only, copy) == []


def test_flag_ids_are_one_per_rule_and_object_version():
    facts = ObjectFacts(ref("photos/odd.jpg"), anomaly_score=0.995, duplicate_of=ref("photos/a.jpg"))
    rewritten = ObjectFacts(ref("photos/odd.jpg", etag="e2"), anomaly_score=0.995, duplicate_of=ref("photos/a.jpg"))

    first, again, later = evaluate_rules(RULES, facts), evaluate_rules(RULES, facts), evaluate_rules(RULES, rewritten)

    assert first == again
    assert len({f.id for f in first}) == len(first) == 2
    assert not {f.id for f in first} & {f.id for f in later}
    assert first[0].as_json()["id"] == first[0].id and first[0].as_json()["key"] == "photos/odd.jpg"
