"""Clusters, their ids across refreshes, keywords and the gaps report, on groups whose truth the test plants."""

from __future__ import annotations

import json

import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import adjusted_rand_score

from mediasift.analysis.clusters import ClusterSettings, Embedded, cluster_space, membership_from_json
from mediasift.analysis.gaps import report_gaps
from mediasift.analysis.reference import ObjectRef
from mediasift.analysis.taxonomy import Evidence, classify_all, labels_by_object, parse_taxonomy
from mediasift.identity import object_id

DIM = 1280
GROUP_TAGS = [("tabby", "tiger cat"), ("sports car", "convertible"), ("espresso", "cup")]
COMMON_TAGS = ("web site", "envelope", "monitor", "packet")
GROUP_WORDS = [("harbour", "ferry", "tide"), ("violin", "orchestra", "concert"), ("glacier", "summit", "rope")]
FILLER = ("report", "notes", "today", "meeting", "update")


def ref(key: str) -> ObjectRef:
    return ObjectRef("media", key, "e1", object_id("media", key))


def blobs(sizes: list[int], seed: int = 0, start: int = 0, spread: float = 1.0) -> tuple[list[Embedded], list[int]]:
    """Unit vectors around one random centre per group (members' cosine about 0.5 with `spread` 1), each with
    two of its group's tags (and one tag every group shares) and a sentence of its group's words among filler
    words."""
    centres = np.random.default_rng(42).normal(size=(len(sizes), DIM))
    rng = np.random.default_rng(seed)
    objects, truth = [], []
    for group, size in enumerate(sizes):
        points = centres[group] / np.sqrt(DIM) + spread * rng.normal(size=(size, DIM)) / np.sqrt(DIM)
        for point in points:
            i = start + len(objects)
            tags = GROUP_TAGS[group % 3] + (COMMON_TAGS[rng.integers(len(COMMON_TAGS))],)
            words = [*rng.choice(GROUP_WORDS[group % 3], 2), *rng.choice(FILLER, 3)]
            objects.append(Embedded(ref(f"g{group}/{i}.jpg"), (point / np.linalg.norm(point)).astype(np.float32),
                                    tags=tags, text=" ".join(words)))
            truth.append(group)
    return objects, truth


def found_labels(clustering, objects) -> list[int]:
    number = {m.object_id: n for n, c in enumerate(clustering.clusters) for m in c.members}
    return [number.get(o.ref.object_id, -1) for o in objects]


def test_three_separated_groups_come_out_as_three_clusters():
    objects, truth = blobs([150, 120, 90])

    clustering = cluster_space("visual", objects)

    ari = adjusted_rand_score(truth, found_labels(clustering, objects))
    print(f"blobs ARI={ari:.3f} clusters={len(clustering.clusters)} noise={len(clustering.noise)}")
    assert ari >= 0.9
    assert [c.size for c in clustering.clusters] == sorted((c.size for c in clustering.clusters), reverse=True)
    assert sum(c.size for c in clustering.clusters) + len(clustering.noise) == len(objects)
    for c in clustering.clusters:
        assert len(c.representatives) == 3 and set(c.representatives) <= set(c.members)


def test_three_digit_classes_come_out_as_three_clusters():
    """Real data: sklearn's 8×8 handwritten digits 0, 4 and 6, as L2-normalised pixel vectors. (Digits that
    are written in several styles, like 1 and 2, come out as one cluster per style instead.)"""
    digits = load_digits()
    chosen = np.isin(digits.target, (0, 4, 6))
    pixels = digits.data[chosen] / np.linalg.norm(digits.data[chosen], axis=1, keepdims=True)
    objects = [Embedded(ref(f"digits/{i}.png"), v) for i, v in enumerate(pixels)]

    clustering = cluster_space("visual", objects)

    ari = adjusted_rand_score(digits.target[chosen], found_labels(clustering, objects))
    print(f"digits 0/4/6 ARI={ari:.3f} clusters={len(clustering.clusters)} noise={len(clustering.noise)}")
    assert len(clustering.clusters) == 3 and ari >= 0.9


def test_ids_stay_when_ten_percent_more_objects_arrive_and_a_new_group_gets_a_new_id():
    objects, _ = blobs([150, 120, 90])
    first = cluster_space("visual", objects)
    more, _ = blobs([15, 12, 9], seed=1, start=len(objects))
    newcomers, _ = blobs([0, 0, 0, 40], seed=2, start=len(objects) + len(more))

    again = cluster_space("visual", objects + more, previous=first.membership())
    grown = cluster_space("visual", objects + more + newcomers, previous=membership_from_json(again.as_json()))

    assert [c.id for c in again.clusters] == [c.id for c in first.clusters]
    for before, after in zip(first.clusters, again.clusters, strict=True):
        assert set(before.members) <= set(after.members) | set(again.noise)
    kept = {c.id for c in grown.clusters} & {c.id for c in first.clusters}
    assert kept == {c.id for c in first.clusters}
    (fresh,) = [c for c in grown.clusters if c.id not in kept]
    assert {m.key.split("/")[0] for m in fresh.members} == {"g3"}


def test_the_same_objects_give_the_same_clusters_and_ids():
    objects, _ = blobs([60, 50, 40])

    first = cluster_space("visual", objects).as_json()
    again = cluster_space("visual", list(reversed(objects))).as_json()

    assert json.dumps(first) == json.dumps(again)


def test_visual_keywords_are_the_tags_planted_in_each_group():
    objects, _ = blobs([80, 70, 60])

    clustering = cluster_space("visual", objects)

    for c in clustering.clusters:
        group = int(c.members[0].key[1])
        assert set(c.keywords[:2]) == set(GROUP_TAGS[group])
        assert set(c.keywords[2:]) <= set(COMMON_TAGS)


def test_text_keywords_are_each_groups_own_words_not_the_filler():
    objects, _ = blobs([80, 70, 60])

    clustering = cluster_space("text", objects, settings=ClusterSettings(keywords=3))

    for c in clustering.clusters:
        group = int(c.members[0].key[1])
        assert set(c.keywords) == set(GROUP_WORDS[group])


def test_clusters_json_has_the_design_shape():
    objects, _ = blobs([40, 40, 40])

    data = json.loads(json.dumps(cluster_space("visual", objects).as_json()))

    assert set(data) == {"space", "clusters", "noise", "gaps"} and data["space"] == "visual"
    cluster = data["clusters"][0]
    assert set(cluster) == {"id", "size", "label", "keywords", "representatives", "members"}
    assert cluster["size"] == len(cluster["members"])
    assert set(cluster["members"][0]) == {"bucket", "key", "etag", "object_id"}


def test_too_few_objects_are_all_noise():
    objects, _ = blobs([3])

    clustering = cluster_space("visual", objects)

    assert clustering.clusters == () and len(clustering.noise) == 3
    assert cluster_space("text", []).as_json() == {"space": "text", "clusters": [], "noise": [], "gaps": []}


GAPS_TAXONOMY = """
gaps: {min_members: 20}
labels:
  - name: animals
    prompts: [animal]
    children:
      - {name: cat, examples: [g0/0.jpg, g0/1.jpg, g0/2.jpg]}
  - {name: vehicles, examples: [g1/150.jpg, g1/151.jpg]}
  - {name: food, examples: [g2/270.jpg], target_share: 0.2}
  - {name: plants, prompts: [a plant in a pot]}
"""


class NoText:
    """The objects have no text; prompts embed to a vector nothing is near."""

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.ones((len(texts), 8), np.float32) / np.sqrt(8)


def test_gaps_show_the_under_represented_class_the_empty_label_and_the_unknown_cluster():
    objects, _ = blobs([150, 120, 12, 60])
    evidence = [Evidence(o.ref, embeddings={"visual": o.vector}) for o in objects]
    taxonomy = parse_taxonomy(GAPS_TAXONOMY)
    labels = labels_by_object(classify_all(evidence, taxonomy, NoText()), "unassigned")

    clustering = report_gaps(cluster_space("visual", objects), taxonomy, labels)

    by_group = {c.members[0].key.split("/")[0]: c for c in clustering.clusters}
    assert {g: c.label for g, c in by_group.items()} == {"g0": "animals/cat", "g1": "vehicles", "g2": "food",
                                                         "g3": None}
    gaps = {(g.kind, g.label or g.cluster) for g in clustering.gaps}
    assert gaps == {("few_members", "food"), ("under_target", "food"), ("few_members", "plants"),
                    ("unlabelled_cluster", by_group["g3"].id)}
    food = next(g for g in clustering.gaps if g.kind == "under_target")
    assert (food.members, food.target_share) == (12, 0.2) and abs(food.share - 12 / 342) < 1e-6
    unknown = next(g for g in clustering.gaps if g.kind == "unlabelled_cluster")
    assert unknown.members == 60 and "matches no label" in unknown.reason
