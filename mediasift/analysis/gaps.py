"""What a collection lacks, measured against its taxonomy: labels with few or no objects, clusters no label
describes (something the taxonomy does not know about), and labels under the share the taxonomy targets.
An ML team reads this before a training run; counts are over the objects of one clustering (members and
noise), with parents counting their children's objects.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import Literal

from mediasift.analysis.clusters import Cluster, Clustering, with_labels
from mediasift.analysis.taxonomy import Taxonomy

GapKind = Literal["few_members", "unlabelled_cluster", "under_target"]


@dataclass(frozen=True)
class Gap:
    kind: GapKind
    reason: str
    label: str | None = None
    cluster: str | None = None
    members: int = 0
    share: float | None = None
    target_share: float | None = None

    def as_json(self) -> dict:
        return {"kind": self.kind, "label": self.label, "cluster": self.cluster, "members": self.members,
                "share": self.share, "target_share": self.target_share, "reason": self.reason}


def report_gaps(clustering: Clustering, taxonomy: Taxonomy, labels: Mapping[str, Collection[str]]) -> Clustering:
    """The clustering with its clusters labelled and its gaps filled in; `labels` maps object id → labels
    (see `taxonomy.labels_by_object`)."""
    named = with_labels(clustering, {c.id: cluster_label(c, labels, taxonomy.gaps.cluster_label_share)
                                     for c in clustering.clusters})
    return replace(named, gaps=find_gaps(named, taxonomy, labels))


def cluster_label(cluster: Cluster, labels: Mapping[str, Collection[str]], share: float) -> str | None:
    """The most specific label at least `share` of the members carry (a cluster of cats is `animals/cat`,
    not `animals`), ties to the label more members carry; None when no label is that common."""
    carried = Counter(label for m in cluster.members for label in labels.get(m.object_id, ()))
    common = [(label, n) for label, n in carried.items() if n >= share * cluster.size]
    if not common:
        return None
    return min(common, key=lambda ln: (-ln[0].count("/"), -ln[1], ln[0]))[0]


def find_gaps(clustering: Clustering, taxonomy: Taxonomy, labels: Mapping[str, Collection[str]]) -> tuple[Gap, ...]:
    """Gaps of an already labelled clustering (a cluster without a label is one)."""
    population = [r.object_id for c in clustering.clusters for r in c.members] + [r.object_id for r in clustering.noise]
    counts = Counter(label for oid in population for label in labels.get(oid, ()))
    total = len(population)
    gaps: list[Gap] = []
    for path, spec in taxonomy.label_tree():
        n, share = counts[path], counts[path] / total if total else 0.0
        if n < taxonomy.gaps.min_members:
            gaps.append(Gap("few_members", f"{n} of {total} objects carry {path!r} (fewer than "
                                           f"{taxonomy.gaps.min_members})", path, None, n, round(share, 6)))
        if spec.target_share is not None and share < spec.target_share:
            gaps.append(Gap("under_target", f"{share:.1%} of objects carry {path!r}, the target is "
                                            f"{spec.target_share:.1%}", path, None, n, round(share, 6),
                            spec.target_share))
    for c in clustering.clusters:
        if c.label is None:
            keywords = f" (keywords: {', '.join(c.keywords)})" if c.keywords else ""
            gaps.append(Gap("unlabelled_cluster", f"cluster {c.id} of {c.size} objects matches no label{keywords}",
                            None, c.id, c.size, round(c.size / total, 6)))
    return tuple(gaps)
