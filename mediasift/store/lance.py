"""The search index: one LanceDB table per layer, rows keyed by (version hash, row number).

Re-running a version deletes its rows and adds the new ones, so it replaces and never duplicates; a
deleted or superseded version's rows are deleted the same way. Text tables carry a full-text index;
every vector column (`vector`, and the visual table's `clip_vector` when it was made with CLIP) gets an ANN
index once the table is big enough for one to pay off. A table keeps the vector columns it was made with:
rows of other models (another size; CLIP vectors, or none) are refused, naming the settings to change.
LanceDB's default IVF-PQ search settings give poor recall, so queries set `nprobes` and `refine_factor`
(see `VectorTuning`, checked against a flat scan in the tests and in bench/search.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

import pyarrow as pa
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_random_exponential

from mediasift.store.records import CLIP_COLUMN, LINEAGE_COLUMNS, lineage_schema

VECTOR_COLUMNS = ("vector", CLIP_COLUMN)
KEEP_EVERY_VERSION = timedelta(days=36_500)
"""`optimize`'s cleanup window that removes no version (its default removes those over 7 days old)."""

log = logging.getLogger(__name__)


def _is_commit_conflict(error: BaseException) -> bool:
    return "Retryable commit conflict" in str(error)


retry_conflicts = retry(retry=retry_if_exception(_is_commit_conflict), stop=stop_after_attempt(8),
                        wait=wait_random_exponential(multiplier=0.05, max=2), reraise=True)
"""Lance commits optimistically: a write that another process's commit preempted (two runs creating a
table's text index at once, two deletes in one fragment) fails with a retryable conflict and wrote nothing,
so it is simply made again, on the table as it now is."""


@dataclass(frozen=True)
class VectorTuning:
    """ANN index and query settings. IVF-PQ with exact re-ranking of `refine_factor × k` candidates."""

    min_rows_for_index: int = 20_000
    rows_per_partition: int = 4_096
    sub_vector_dims: int = 8
    nprobes: int = 20
    refine_factor: int = 20
    max_fragments: int = 32
    """Fragments a table may grow to before a run compacts it (see `LanceIndex.compact`)."""

    def partitions(self, rows: int) -> int:
        return max(16, min(4096, rows // self.rows_per_partition))


@dataclass(frozen=True)
class IndexHealth:
    """What a layer's table holds of some versions, for the asset checks to judge
    (mediasift.store.expectations): their rows' lineage columns, and the table's vector sizes (None: no
    table, or no CLIP column)."""

    lineage: pa.Table
    dim: int | None
    clip_dim: int | None = None


CreationGuard = Callable[[str], AbstractContextManager[None]]
"""Held, across processes, while a layer's table is created (given the layer's name)."""


class LanceIndex:
    def __init__(self, uri: str, tuning: VectorTuning | None = None, creation_guard: CreationGuard | None = None):
        """`creation_guard` serialises table creation between the processes that write this index. LanceDB
        0.40 cannot create one table from two processes at once: the loser's create is committed as an
        Overwrite on top of the winner's table and can wipe rows the winner has already added."""
        self.uri = uri
        self.tuning = tuning or VectorTuning()
        self._lock = threading.Lock()
        self._creation_guard = creation_guard or (lambda _layer: nullcontext())

    @cached_property
    def db(self):
        """Connected on first use: importing lancedb takes about a second, which a Dagster run would
        otherwise spend before its first object reaches the workers."""
        import lancedb

        return lancedb.connect(self.uri)

    def table(self, layer: str):
        try:
            return self.db.open_table(layer)
        except (FileNotFoundError, ValueError):
            return None

    def _table_for(self, layer: str, rows: pa.Schema):
        table = self.table(layer)
        if table is None:
            with self._creation_guard(layer):
                table = self.table(layer)
                if table is None:
                    table = self.db.create_table(layer, schema=rows)
        if not any(ix.columns == ["text"] for ix in table.list_indices()):
            from lancedb.index import FTS

            table.create_index("text", config=FTS(with_position=False), replace=True)
        check_same_vectors(layer, table.schema, rows)
        return table

    @retry_conflicts
    def replace_versions(self, layer: str, version_hashes: list[str], tables: list[pa.Table]) -> None:
        """These versions' rows in `layer` become exactly the rows of `tables`, in one delete and one add
        (each Lance write is a new table version; a batch should not make hundreds)."""
        if not version_hashes:
            return
        predicate = versions_predicate(version_hashes)
        with self._lock:
            if not tables:
                table = self.table(layer)
                if table is not None:
                    table.delete(predicate)
                return
            table = self._table_for(layer, tables[0].schema)
            table.delete(predicate)
            table.add(pa.concat_tables(tables))

    @retry_conflicts
    def remove_versions(self, version_hashes: list[str]) -> int:
        """Delete these versions' rows from every layer; returns how many rows were removed."""
        if not version_hashes:
            return 0
        predicate = versions_predicate(version_hashes)
        removed = 0
        with self._lock:
            for name in self.db.list_tables().tables:
                table = self.db.open_table(name)
                removed += table.count_rows(predicate)
                table.delete(predicate)
        return removed

    def count(self, layer: str, where: str | None = None) -> int:
        table = self.table(layer)
        return 0 if table is None else table.count_rows(where)

    def health(self, layer: str, version_hashes: list[str]) -> IndexHealth:
        table = self.table(layer)
        if table is None or not version_hashes:
            return IndexHealth(lineage_schema().empty_table(), None)
        lineage = (table.search().where(versions_predicate(version_hashes)).select(list(LINEAGE_COLUMNS))
                   .limit(None).to_arrow())
        return IndexHealth(lineage, vector_dim(table.schema, "vector"), vector_dim(table.schema, CLIP_COLUMN))

    @retry_conflicts
    def ensure_vector_index(self, layer: str, force: bool = False) -> bool:
        """Build the tuned ANN index of each vector column once a table is big enough (rebuild them when
        forced). Until then search scans exactly; rows added after the build are scanned exactly too and
        merged with the indexed results. Returns whether an index was built."""
        table = self.table(layer)
        if table is None:
            return False
        rows = table.count_rows()
        if not force and rows < self.tuning.min_rows_for_index:
            return False
        indexed = [ix.columns for ix in table.list_indices()]
        columns = [c for c in VECTOR_COLUMNS if vector_dim(table.schema, c) and (force or [c] not in indexed)]
        for column in columns:
            self._build_vector_index(table, column, rows)
        if columns:
            self._optimize(table)
        return bool(columns)

    @retry_conflicts
    def compact(self, layer: str) -> bool:
        """Merge the table's fragments once there are more than `max_fragments`. Every index write adds one,
        and every delete (each write starts with one) and filtered read opens them all: at 300 fragments a
        delete took 26 ms of CPU against 3 ms on one, a cost each run paid dozens of times and that grew with
        the bucket. Old versions all stay (what snapshots' tags pin, and `--as-of`); cleanup is
        `cleanup_keeping_tags`'s. The FTS and vector indexes take in the rows added since they were built.
        Returns whether it compacted."""
        table = self.table(layer)
        if table is None or table.stats()["fragment_stats"]["num_fragments"] <= self.tuning.max_fragments:
            return False
        self._optimize(table)
        return True

    def _optimize(self, table) -> None:
        """Compact and fold new rows into the indexes, removing no version: LanceDB's default would remove the
        untagged versions over 7 days old (what `--as-of` reads) and refuse outright once a snapshot's tag is
        that old. Removing versions is `cleanup_keeping_tags`'s alone."""
        with self._lock:
            table.optimize(cleanup_older_than=KEEP_EVERY_VERSION)

    def _build_vector_index(self, table, column: str, rows: int) -> None:
        from lancedb.index import IvfPq

        table.create_index(column, config=IvfPq(
            distance_type="cosine", num_partitions=self.tuning.partitions(rows),
            num_sub_vectors=max(1, vector_dim(table.schema, column) // self.tuning.sub_vector_dims)), replace=True)


class PinnedIndex(LanceIndex):
    """The index as a snapshot's tag pinned it: each table checked out at `tag`, for reading only (Lance
    refuses writes in time-travel mode). A table without the tag did not exist when the snapshot was taken,
    so it reads as absent."""

    def __init__(self, uri: str, tag: str, tuning: VectorTuning | None = None):
        super().__init__(uri, tuning)
        self.tag = tag

    def table(self, layer: str):
        table = super().table(layer)
        if table is None or self.tag not in table.tags.list():
            return None
        table.checkout(self.tag)
        return table


def tag_tables(index: LanceIndex, tag: str) -> dict[str, int]:
    """Pin every table's current version under `tag` and return {table: version}. A tag is what keeps a
    version's files from cleanup, so a snapshot's search can be answered later. All or nothing: when one
    table refuses the tag (it exists already, an invalid name), the tags made so far are deleted again."""
    pinned: dict[str, int] = {}
    with index._lock:
        try:
            for name in index.db.list_tables().tables:
                table = index.db.open_table(name)
                table.tags.create(tag, table.version)
                pinned[name] = table.version
        except Exception:
            for name in pinned:
                index.db.open_table(name).tags.delete(tag)
            raise
    return pinned


def delete_tag(index: LanceIndex, tag: str) -> None:
    """Unpin `tag` on every table that has it (its versions become ordinary old versions again)."""
    with index._lock:
        for name in index.db.list_tables().tables:
            table = index.db.open_table(name)
            if tag in table.tags.list():
                table.tags.delete(tag)


def cleanup_keeping_tags(index: LanceIndex, older_than: timedelta, delete_unverified: bool = False) -> dict[str, int]:
    """Compact every table and remove its versions older than `older_than`, except what tags pin.

    LanceDB 0.40's `optimize(cleanup_older_than=…)` refuses outright when a tagged version falls in the
    window ("tagged version(s) have been marked for cleanup"; the Python API cannot pass Lance's
    `error_if_tagged_old_versions=False`), so a snapshot would block every cleanup. The window is shrunk to
    end a second before the oldest tagged version instead: versions before it are removed, the tagged ones
    and those between tags stay. Returns {table: versions left}."""
    left: dict[str, int] = {}
    with index._lock:
        for name in index.db.list_tables().tables:
            table = index.db.open_table(name)
            window = older_than
            tagged = {tag["version"] for tag in table.tags.list().values()}
            if tagged:
                oldest = min(v["timestamp"] for v in table.list_versions() if v["version"] in tagged)
                window = max(older_than, datetime.now() - oldest + timedelta(seconds=1))
            table.optimize(cleanup_older_than=window, delete_unverified=delete_unverified)
            left[name] = len(table.list_versions())
    return left


def vector_dim(schema: pa.Schema, column: str) -> int | None:
    """The size of a vector column; None when the table has no such column."""
    index = schema.get_field_index(column)
    return None if index < 0 else schema.field(index).type.list_size


def check_same_vectors(layer: str, held: pa.Schema, rows: pa.Schema) -> None:
    """Raises ValueError when `rows` come from other models than the table `layer` was made with."""
    have, got = vector_dim(held, "vector"), vector_dim(rows, "vector")
    if have != got:
        raise ValueError(f"LanceDB table {layer!r} holds {have}-d vectors, these rows are {got}-d: "
                         f"a different model was configured; index into a fresh MEDIASIFT_LANCE_URI")
    have, got = vector_dim(held, CLIP_COLUMN), vector_dim(rows, CLIP_COLUMN)
    if have != got:
        raise ValueError(clip_mismatch(layer, have, got, "these rows"))


def clip_mismatch(layer: str, have: int | None, got: int | None, other: str) -> str:
    """What to do when the table's CLIP vectors (`have`-d, None: none) are not those of `other` (`got`-d)."""
    held = "was made without CLIP vectors" if have is None else f"holds {have}-d CLIP vectors"
    theirs = f"{other} have none" if got is None else f"{other} are {got}-d CLIP vectors"
    return (f"LanceDB table {layer!r} {held} and {theirs}: the CLIP settings (MEDIASIFT_CLIP_MODEL, "
            "MEDIASIFT_CLIP_PRETRAINED, MEDIASIFT_CLIP_CHECKPOINT) differ from those it was made with; set them "
            "back, or index into a fresh MEDIASIFT_LANCE_URI")


def versions_predicate(version_hashes: list[str]) -> str:
    return "version_hash IN (" + ", ".join(f"'{sql_quote(h)}'" for h in version_hashes) + ")"


def sql_quote(value: str) -> str:
    """A value inside a single-quoted SQL string literal of a Lance filter."""
    return value.replace("'", "''")
