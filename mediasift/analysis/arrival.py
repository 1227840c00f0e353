"""Verdicts at arrival, made in the object's own run and kept: duplicate (exact or near, against the
representatives of the objects that arrived before it) and anomaly score (against the reference the last
rescore wrote). Later arrivals do not change them; the batch views recompute the same duplicate verdicts
by replaying the object table in arrival order.

The state is rebuilt from the object table once per run (a replay of every stored fingerprint), which is
cheap for buckets of thousands of objects; a long-lived analysis worker would keep it warm instead.
Two runs judging at the same moment do not see each other's objects; the batch view's replay is the
tie-breaker (it orders by inbox sequence).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cached_property

from mediasift.analysis.anomalies import AnomalyReference, score_arrival
from mediasift.analysis.duplicates import DuplicateIndex, text_signature
from mediasift.analysis.objects import OBJECTS, ObjectRecord, current, fingerprint_of
from mediasift.store.parquet import FeatureTables

log = logging.getLogger(__name__)


class ArrivalJudge:
    def __init__(self, tables: FeatureTables, reference: Callable[[], AnomalyReference | None]):
        """`reference` loads the visual anomaly reference of the last rescore (None before the first)."""
        self.tables = tables
        self._load_reference = reference

    @cached_property
    def duplicates(self) -> DuplicateIndex:
        index = DuplicateIndex()
        frame = self.tables.scan(OBJECTS)
        if frame is not None:
            index.arrive_many([fingerprint_of(row) for row in current(frame).iter_rows(named=True)])
        return index

    @cached_property
    def reference(self) -> AnomalyReference | None:
        return self._load_reference()

    def judge(self, record: ObjectRecord) -> ObjectRecord:
        record.text_signature = text_signature(record.summary.text)
        record.verdict = self.duplicates.arrive(record.fingerprint())
        if record.summary.visual is not None:
            score = score_arrival(self.reference, record.ref, record.summary.visual)
            record.anomaly = {"score": score.score, "distance": score.distance, "flagged": score.flagged,
                              "scored_at": score.scored_at, "reference_size": score.reference_size}
        log.info("object_judged uri=%s duplicate_of=%s reason=%s anomaly=%s", record.version.uri,
                 record.verdict.duplicate_of and record.verdict.duplicate_of.key, record.verdict.reason,
                 record.anomaly and record.anomaly["score"])
        return record
