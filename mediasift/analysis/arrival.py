"""Verdicts at arrival, made in the object's own run and kept: duplicate (exact or near, against the
representatives of the objects that arrived before it), anomaly score (against the reference the last
rescore wrote) and the taxonomy's rule flags (over the version's own layer rows and those verdicts).
Later arrivals do not change them; the batch views recompute the same duplicate verdicts by replaying the
object table in arrival order.

The state is rebuilt from the object table once per run (a replay of every stored fingerprint, reading
only their columns): about a second per run at 5,000 objects on 2 cores, so a bucket of millions would want
a long-lived analysis worker that keeps it warm instead.
Two runs judging at the same moment do not see each other's objects; the batch view's replay is the
tie-breaker (it orders by inbox sequence).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cached_property

from mediasift.analysis.anomalies import AnomalyReference, score_arrival
from mediasift.analysis.duplicates import DuplicateIndex, text_signature
from mediasift.analysis.objects import FINGERPRINT_COLUMNS, ObjectRecord, current, fingerprint_of, scan_objects
from mediasift.analysis.taxonomy import TEXT_LAYERS, Entity, ObjectFacts, RuleSpec, TextRow, evaluate_rules
from mediasift.extraction.layers.rows import Row
from mediasift.store.parquet import FeatureTables

log = logging.getLogger(__name__)


class ArrivalJudge:
    def __init__(self, tables: FeatureTables, reference: Callable[[], AnomalyReference | None],
                 rules: Sequence[RuleSpec] = ()):
        """`reference` loads the visual anomaly reference of the last rescore (None before the first)."""
        self.tables = tables
        self._load_reference = reference
        self.rules = rules

    @cached_property
    def duplicates(self) -> DuplicateIndex:
        index = DuplicateIndex()
        frame = scan_objects(self.tables)
        if frame is not None:
            rows = current(frame.select(FINGERPRINT_COLUMNS)).iter_rows(named=True)
            index.arrive_many([fingerprint_of(row) for row in rows])
        return index

    @cached_property
    def reference(self) -> AnomalyReference | None:
        return self._load_reference()

    def judge(self, record: ObjectRecord, rows: Mapping[str, list[Row]]) -> ObjectRecord:
        """`rows`: the version's layer rows, what text and entity rules read."""
        record.text_signature = text_signature(record.summary.text)
        record.verdict = self.duplicates.arrive(record.fingerprint())
        if record.summary.visual is not None:
            score = score_arrival(self.reference, record.ref, record.summary.visual)
            record.anomaly = {"score": score.score, "distance": score.distance, "flagged": score.flagged,
                              "scored_at": score.scored_at, "reference_size": score.reference_size}
        log.info("object_judged uri=%s duplicate_of=%s reason=%s anomaly=%s", record.version.uri,
                 record.verdict.duplicate_of and record.verdict.duplicate_of.key, record.verdict.reason,
                 record.anomaly and record.anomaly["score"])
        at = datetime.now(UTC).isoformat()
        record.flags = [{"rule": f.rule, "reason": f.reason, "id": f.id, "at": at}
                        for f in evaluate_rules(self.rules, arrival_facts(record, rows))]
        for flag in record.flags:
            log.info("object_flagged uri=%s rule=%s reason=%s", record.version.uri, flag["rule"], flag["reason"])
        return record


def arrival_facts(record: ObjectRecord, rows: Mapping[str, list[Row]]) -> ObjectFacts:
    """What rules read of a version in its own run: its layer rows' words and entities with where they
    are, its content facts and the verdicts it just got."""
    text = tuple(TextRow(layer, r.text, r.page, r.t_start) for layer in TEXT_LAYERS for r in rows.get(layer, ())
                 if r.text)
    entities = tuple(Entity(r.label or "", r.text, r.extra.get("source_layer"), r.page, r.t_start)
                     for r in rows.get("entities", ()) if r.text)
    return ObjectFacts(record.ref, record.version.version_id, record.content_type, record.size, text, entities,
                       (record.anomaly or {}).get("score"), record.verdict.duplicate_of, record.verdict.kind)
