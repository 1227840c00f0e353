"""What a row must be to become searchable, in one place. Two judges use it: the gate that a version's rows
pass before anything of them is written (`mediasift.run.versions`: a version that fails is written nowhere
and dead-lettered), and the layer asset checks over what the index holds after each run's write
(`assets/layers.py`). So the checks cannot come to expect other things than the gate lets through.

- `rows_have_lineage`: every row names the version it came from (DESIGN §2: bucket, key, ETag, object id and
  version hash, with its extractor and time), and it is the version it is stored for: a hit without its
  lineage, or with another version's, leads to the wrong object.
- `vector_dimensions`: vectors have the configured models' sizes: MiniLM's in the text layers,
  EfficientNet-Lite0's in `visual`, whose rows carry a CLIP vector of the CLIP model's size exactly when
  CLIP is configured. A Lance table holds one size: rows of another would be refused by it, and into an
  empty index they would make the table that refuses every good row after them.
- `no_rows_for_removed_versions`: nothing is left of a version the run found superseded or deleted. Only
  the index can tell, after the write, so this one never stops a version at the gate.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from mediasift.config import Settings
from mediasift.extraction.layers.rows import Row
from mediasift.extraction.models.clip import configured_name, embed_dim
from mediasift.extraction.models.imagenet import DIM as VISUAL_DIM
from mediasift.extraction.models.text import DIM as TEXT_DIM
from mediasift.identity import ObjectVersion
from mediasift.store.lance import IndexHealth
from mediasift.store.records import IDENTITY_COLUMNS, LINEAGE_COLUMNS

LINEAGE = "rows_have_lineage"
VECTORS = "vector_dimensions"
REMOVED = "no_rows_for_removed_versions"
CHECKS = (LINEAGE, VECTORS, REMOVED)
GATED = (LINEAGE, VECTORS)
"""The expectations that can be judged before the write: a version whose rows fail one is stopped."""


@dataclass(frozen=True)
class Verdict:
    """One expectation judged on one layer's rows of a version (or on the layer's index table)."""

    check: str
    layer: str
    passed: bool
    facts: dict[str, int]
    """The numbers it was judged by, shown as the check's metadata."""
    problem: str | None = None
    """What is wrong, with the numbers (`visual rows have 3-d vectors, expected 1280`); None when it passed."""

    @property
    def reason(self) -> str:
        """The problem as a failed version's reason: `vector_dimensions: visual rows have 3-d vectors, …`."""
        return f"{self.check}: {self.problem}"


@dataclass(frozen=True)
class RowExpectations:
    """The vector sizes rows must have, from the models the settings configure."""

    text_dim: int = TEXT_DIM
    visual_dim: int = VISUAL_DIM
    clip_dim: int | None = None
    """The CLIP vectors' size on visual rows; None: CLIP is not configured and visual rows carry none."""

    @classmethod
    def from_settings(cls, settings: Settings) -> RowExpectations:
        clip = configured_name(settings.clip_model, settings.clip_pretrained, settings.clip_checkpoint)
        return cls(clip_dim=embed_dim(settings.clip_model) if clip else None)

    def vector_dim(self, layer: str) -> int:
        return self.visual_dim if layer == "visual" else self.text_dim

    def failed_vectors(self, rows: Mapping[str, list[Row]]) -> list[Verdict]:
        """The gate's first half, on the extractor's rows by layer (before any table is built: a table cannot
        even hold vectors of two sizes): the layers whose vectors are not the models'."""
        return [v for layer, layer_rows in rows.items() if not (v := self._row_vectors(layer, layer_rows)).passed]

    def failed_lineage(self, version: ObjectVersion, tables: Mapping[str, Sequence[pa.Table]]) -> list[Verdict]:
        """The gate's second half, on the tables the stores would be given for `version` (lineage is added
        there), by layer: the layers with a row whose lineage is missing or another version's."""
        return [v for layer, layer_tables in tables.items() for table in layer_tables
                if not (v := self.lineage(layer, table, version)).passed]

    def judge_index(self, layer: str, held: IndexHealth, versions: Sequence[ObjectVersion],
                    removed: Collection[str]) -> dict[str, list[Verdict]]:
        """Each version's verdicts on what `layer`'s index table holds after the write: its rows' lineage, the
        table's vector sizes (one table, one size: the same verdict for every version), and, for a removed
        version (its hash in `removed`), that none of its rows are left."""
        vectors = self.vectors(layer, [held.dim] if held.dim else [], [held.clip_dim], f"rows in the {layer} index")
        hashes = held.lineage["version_hash"]
        verdicts = {}
        for version in versions:
            rows = held.lineage.filter(pc.fill_null(pc.equal(hashes, version.version_hash), False))
            left = rows.num_rows if version.version_hash in removed else 0
            verdicts[version.version_hash] = [self.lineage(layer, rows, version), vectors, self.removed(layer, left)]
        return verdicts

    def lineage(self, layer: str, rows: pa.Table, version: ObjectVersion) -> Verdict:
        """Rows that lack a lineage field (null; an empty bucket, key, ETag or hash) or name another version."""
        if not rows.num_rows:
            return Verdict(LINEAGE, layer, True, {"rows_without_lineage": 0})
        own = {"version_hash": version.version_hash, **version.lineage()}
        fine = pa.array([True] * rows.num_rows, pa.bool_())
        for column in LINEAGE_COLUMNS:
            ok = pc.is_valid(rows[column])
            if column in IDENTITY_COLUMNS:
                matches = pc.equal(rows[column], pa.scalar(own[column] or None, pa.string()))
                ok = pc.and_(ok, pc.fill_null(matches, False))
            fine = pc.and_(fine, ok)
        faults = rows.num_rows - pc.sum(fine).as_py()
        problem = (f"{faults} of {rows.num_rows} {layer} rows lack their lineage (bucket, key, etag, version hash) "
                   f"or name another version than {version.uri} (etag {version.etag})") if faults else None
        return Verdict(LINEAGE, layer, not faults, {"rows_without_lineage": faults}, problem)

    def vectors(self, layer: str, dims: Collection[int], clip_dims: Collection[int | None], subject: str) -> Verdict:
        """`dims` are the sizes of the vectors found (none: no vectors, nothing to judge), `clip_dims` those of
        their CLIP vectors (None for rows without one); judged only on visual rows, the only ones with CLIP."""
        expected = self.vector_dim(layer)
        problems = []
        if any(d != expected for d in dims):
            problems.append(f"{subject} have {_sizes(dims)} vectors, expected {expected}")
        clip_judged = layer == "visual" and bool(dims)
        if clip_judged and set(clip_dims) != {self.clip_dim}:
            wanted = f"{self.clip_dim}-d" if self.clip_dim else "none (no CLIP is configured)"
            problems.append(f"{subject} have {_sizes(clip_dims)} CLIP vectors, expected {wanted}")
        facts = {"dim": _shown(dims, expected), "expected": expected,
                 "clip_dim": _shown(clip_dims if clip_judged else [], self.clip_dim),
                 "expected_clip": self.clip_dim or 0}
        return Verdict(VECTORS, layer, not problems, facts, "; ".join(problems) or None)

    def removed(self, layer: str, rows: int) -> Verdict:
        problem = f"{rows} {layer} rows of a removed version are still in the index" if rows else None
        return Verdict(REMOVED, layer, not rows, {"rows": rows}, problem)

    def _row_vectors(self, layer: str, rows: list[Row]) -> Verdict:
        carrying = [r for r in rows if r.vector is not None]
        return self.vectors(layer, {r.vector.shape[0] for r in carrying},
                            {None if r.clip_vector is None else r.clip_vector.shape[0] for r in carrying},
                            f"{layer} rows")


def _sizes(sizes: Collection[int | None]) -> str:
    """`3-d`, `3-d and 1280-d`; `no` for rows without a (CLIP) vector."""
    return " and ".join(f"{s}-d" if s else "no" for s in sorted(set(sizes), key=lambda s: s or 0))


def _shown(sizes: Collection[int | None], expected: int | None) -> int:
    """The size a check's metadata shows: an offending one when there is one; 0 for none."""
    found = sorted(s or 0 for s in set(sizes))
    return next((s for s in found if s != (expected or 0)), found[0] if found else 0)
