"""Duplicates: a verdict for each object when it arrives, made against the representatives of the groups
seen before it, and a batch replay that gives the same verdicts.

- Exact: the same sha256 under another key (or bucket) → a duplicate of the first object that had it.
- Near, pictures (images, keyframes, page images): the object's trained visual feature and pHash against
  each representative. It matches when cosine ≥ 0.93, or when the pHashes are within Hamming distance 2
  and cosine ≥ 0.75 (the pHash rescues small and heavily recompressed copies, whose features move the
  most; the cosine floor keeps apart flat frames, whose pHashes all collide: a red and a blue one are at
  cosine 0.55, though black, white and dark grey ones, at 0.88-0.96, still merge). Chosen on the transform
  ladder of tests/unit/test_duplicates.py (recall 0.929 at near-duplicate precision 0.971). The rule of
  highest recall at precision ≥ 0.95 there had cosine 0.91 (0.938 at 0.960): its one extra find per run
  is a 70% crop, and 0.91 is where the two cameras of a stereo pair meet (0.905-0.910), so we keep the
  margin; below 0.91 two patches of one brick wall and handwritten digits merge. Without the pHash rule,
  JPEG q30 copies are found 62% and ×0.25 copies 25% of the time instead of always.
- Near, text (documents, transcripts): Jaccard similarity of word 3-shingles ≥ 0.8, estimated by MinHash
  and found through LSH bands.

An object joins the group of the best matching representative (highest cosine or Jaccard, then the
earliest), or becomes a representative itself. Members are compared with the representative only, never
with other members, so A≈B, B≈C, A≉C cannot chain A and C together. Verdicts depend on arrival order (the
first of a group is its representative), so the batch view replays the recorded arrival order; the
representative index changes shape only at row counts fixed in advance, which makes a replay in blocks
give exactly what arrivals one at a time gave. Versions of one key are never each other's duplicates.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from PIL import Image

from mediasift.analysis.reference import IndexSettings, ObjectRef, VectorIndex

BLOCK = 1024
"""Arrivals judged per batched search in a replay."""
SEARCH_K = 4
"""Nearest representatives fetched per object (a few, because versions of its own key are skipped)."""
MARGIN = 1e-4
"""Float32 scores propose candidates this far below a threshold; the decision is made in float64."""
SHINGLE = 3
BANDS, BAND_ROWS = 16, 8
PERMUTATIONS = BANDS * BAND_ROWS
_MULTIPLIERS = np.random.default_rng(20240601).integers(1, 2**63, PERMUTATIONS, dtype=np.uint64) | np.uint64(1)
_OFFSETS = np.random.default_rng(20240602).integers(0, 2**63, PERMUTATIONS, dtype=np.uint64)


@dataclass(frozen=True)
class NearRule:
    cosine: float = 0.93
    phash_distance: int = 2
    phash_cosine: float = 0.75
    jaccard: float = 0.8


@dataclass(frozen=True, eq=False)
class Fingerprint:
    """What an object's run records so that its verdict can be made, and remade by a replay: `arrived` is
    the inbox sequence number; `visual` (an L2-normalised feature, with its `phash`) or `text` (a
    MinHash signature from `text_signature`) chooses the space it is compared in, if any."""

    ref: ObjectRef
    arrived: int
    sha256: str
    visual: np.ndarray | None = None
    phash: int | None = None
    text: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.visual is not None and self.text is not None:
            raise ValueError(f"{self.ref}: a fingerprint is compared in one space, visual or text, not both")
        if self.phash is not None and self.visual is None:
            raise ValueError(f"{self.ref}: a pHash is only used beside the visual feature it confirms")


@dataclass(frozen=True)
class Verdict:
    duplicate_of: ObjectRef | None = None
    reason: str | None = None
    """"sha256", "phash:d=1", "cosine:0.97" or "jaccard:0.91"; None for a representative."""

    @property
    def kind(self) -> Literal["exact", "near"] | None:
        if self.duplicate_of is None:
            return None
        return "exact" if self.reason == "sha256" else "near"

    def as_json(self) -> dict:
        return {"duplicate_of": self.duplicate_of and self.duplicate_of.as_json(), "reason": self.reason}


@dataclass(frozen=True)
class Member:
    ref: ObjectRef
    reason: str | None
    """Why it is in the group; None for the representative."""


@dataclass(frozen=True)
class DuplicateGroup:
    kind: Literal["exact", "near"]
    representative: ObjectRef
    members: tuple[Member, ...]
    """The representative first, then the duplicates in arrival order."""

    def as_json(self) -> dict:
        return {"kind": self.kind, "representative": self.representative.as_json(),
                "members": [{**m.ref.as_json(), "reason": m.reason} for m in self.members]}


def perceptual_hash(image: Image.Image) -> int:
    import imagehash

    return int(str(imagehash.phash(image)), 16)


def text_signature(text: str) -> np.ndarray | None:
    """MinHash of the text's lower-cased word 3-shingles (PERMUTATIONS uint32 values); None without words."""
    words = re.findall(r"\w+", text.lower())
    if not words:
        return None
    shingles = {" ".join(words[i:i + SHINGLE]) for i in range(max(1, len(words) - SHINGLE + 1))}
    hashes = np.array([int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little")
                       for s in sorted(shingles)], dtype=np.uint64)
    signature = np.full(PERMUTATIONS, np.iinfo(np.uint64).max, dtype=np.uint64)
    for lo in range(0, len(hashes), 4096):
        mixed = hashes[lo:lo + 4096, None] * _MULTIPLIERS + _OFFSETS
        signature = np.minimum(signature, mixed.min(0))
    return (signature >> np.uint64(32)).astype(np.uint32)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a.astype(np.float64), b.astype(np.float64)))


class _PhashTable:
    """Multi-index hashing: split the 64 bits into d+1 pieces; a hash within Hamming distance d of the
    query agrees with it on at least one whole piece, so d+1 dictionary lookups find every one."""

    def __init__(self, distance: int):
        bounds = np.linspace(0, 64, distance + 2).round().astype(int)
        self.distance = distance
        self._pieces = [(int(lo), (1 << int(hi - lo)) - 1) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
        self._tables: list[dict[int, list[int]]] = [defaultdict(list) for _ in self._pieces]
        self._hashes: dict[int, int] = {}

    def add(self, ids: Iterable[int], hashes: Iterable[int | None]) -> None:
        for i, h in zip(ids, hashes, strict=True):
            if h is None:
                continue
            self._hashes[i] = h
            for (shift, mask), table in zip(self._pieces, self._tables, strict=True):
                table[(h >> shift) & mask].append(i)

    def hash_of(self, i: int) -> int | None:
        return self._hashes.get(i)

    def near(self, h: int) -> list[int]:
        found = {i for (shift, mask), table in zip(self._pieces, self._tables, strict=True)
                 for i in table.get((h >> shift) & mask, ())}
        return sorted(i for i in found if (h ^ self._hashes[i]).bit_count() <= self.distance)


def _distance(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else (a ^ b).bit_count()


class _VisualReps:
    """The representatives in the visual space: their features (a VectorIndex, ids in order) and pHashes."""

    def __init__(self, rule: NearRule, settings: IndexSettings):
        self.rule, self.settings = rule, settings
        self.refs: list[ObjectRef] = []
        self.index: VectorIndex | None = None
        self.phash = _PhashTable(rule.phash_distance)

    def prepare(self, prints: Sequence[Fingerprint]) -> _Block:
        vectors = np.stack([p.visual for p in prints]).astype(np.float32)
        if self.index is None:
            self.index = VectorIndex(vectors.shape[1], self.settings)
        stored = vectors.astype(self.index.settings.dtype).astype(np.float32)
        scores, ids = self.index.search(vectors, SEARCH_K)
        close = vectors @ stored.T >= min(self.rule.cosine, self.rule.phash_cosine) - MARGIN
        return _Block(prints, vectors, stored, scores, ids, close, np.zeros(len(prints), bool))

    def room(self) -> int:
        return self.index.room() if self.index is not None else BLOCK

    def reason(self, cosine: float, distance: int | None) -> str | None:
        r = self.rule
        if distance is not None and distance <= r.phash_distance and cosine >= r.phash_cosine:
            return f"phash:d={distance}"
        return f"cosine:{cosine:.2f}" if cosine >= r.cosine else None

    def best(self, block: _Block, row: int) -> tuple[ObjectRef, str] | None:
        """The best representative for the block's `row`-th print, of those its search proposed, those
        within pHash distance, and those made earlier in this block."""
        own = block.prints[row].ref.object_id
        candidates = self._indexed(block, row) + self._made_here(block, row)
        passing = [(cos, -i, self.reason(cos, d)) for cos, d, i in candidates
                   if self._ref(block, i).object_id != own and self.reason(cos, d)]
        if not passing:
            return None
        cos, negative_id, reason = max(passing)
        return self._ref(block, -negative_id), reason

    def _indexed(self, block: _Block, row: int) -> list[tuple[float, int | None, int]]:
        """(float64 cosine, pHash distance, id) of the representatives from before the block that may match."""
        p = block.prints[row]
        proposed = {int(i) for s, i in zip(block.scores[row], block.ids[row], strict=True)
                    if i >= 0 and s >= self.rule.cosine - MARGIN}
        if p.phash is not None:
            proposed.update(self.phash.near(p.phash))
        if not proposed:
            return []
        ids = np.array(sorted(proposed), dtype=np.int64)
        cosines = self.index.vectors(ids).astype(np.float64) @ block.vectors[row].astype(np.float64)
        return [(float(c), _distance(p.phash, self.phash.hash_of(int(i))), int(i))
                for c, i in zip(cosines, ids, strict=True)]

    def _made_here(self, block: _Block, row: int) -> list[tuple[float, int | None, int]]:
        """The same for representatives made earlier in the block, whose ids follow the index's."""
        p = block.prints[row]
        return [(_cosine(block.vectors[row], block.stored[r]), _distance(p.phash, block.prints[r].phash),
                 len(self.refs) + block.new.index(r)) for r in np.flatnonzero(block.close[row] & block.made)]

    def _ref(self, block: _Block, i: int) -> ObjectRef:
        return self.refs[i] if i < len(self.refs) else block.prints[block.new[i - len(self.refs)]].ref

    def commit(self, block: _Block) -> None:
        if not block.new:
            return
        ids = range(len(self.refs), len(self.refs) + len(block.new))
        self.index.add(block.vectors[block.new])
        self.phash.add(ids, [block.prints[i].phash for i in block.new])
        self.refs.extend(block.prints[i].ref for i in block.new)


@dataclass
class _Block:
    """Visual prints judged together: their searches against the representatives as they stood before the
    block, and their cosines with each other (for representatives made inside the block)."""

    prints: Sequence[Fingerprint]
    vectors: np.ndarray
    stored: np.ndarray
    """The vectors as the index will hold them (rounded to its dtype)."""
    scores: np.ndarray
    ids: np.ndarray
    close: np.ndarray
    """close[i, j]: print j is near enough to print i to be a candidate, were it a representative."""
    made: np.ndarray
    """made[j]: print j became a representative in this block."""
    new: list[int] = field(default_factory=list)

    def represent(self, row: int) -> None:
        self.made[row] = True
        self.new.append(row)


class _TextReps:
    """Representatives in the text space, found by LSH on MinHash bands (BANDS × BAND_ROWS)."""

    def __init__(self, rule: NearRule):
        self.rule = rule
        self.refs: list[ObjectRef] = []
        self.signatures: list[np.ndarray] = []
        self.bands: list[dict[bytes, list[int]]] = [defaultdict(list) for _ in range(BANDS)]

    def best(self, p: Fingerprint) -> tuple[ObjectRef, str] | None:
        found = {i for b, table in enumerate(self.bands) for i in table.get(_band(p.text, b), ())}
        passing = [(float(np.mean(self.signatures[i] == p.text)), -i) for i in found
                   if self.refs[i].object_id != p.ref.object_id]
        passing = [(j, i) for j, i in passing if j >= self.rule.jaccard]
        if not passing:
            return None
        jaccard, negative_id = max(passing)
        return self.refs[-negative_id], f"jaccard:{jaccard:.2f}"

    def add(self, p: Fingerprint) -> None:
        for b, table in enumerate(self.bands):
            table[_band(p.text, b)].append(len(self.refs))
        self.refs.append(p.ref)
        self.signatures.append(p.text)


def _band(signature: np.ndarray, band: int) -> bytes:
    return signature[band * BAND_ROWS:(band + 1) * BAND_ROWS].tobytes()


class DuplicateIndex:
    """The state verdicts are made against: first holder of each sha256, and the representatives of each
    space. Judging an object version twice gives the verdict it got the first time."""

    def __init__(self, rule: NearRule | None = None, settings: IndexSettings | None = None):
        self.rule = rule or NearRule()
        self.verdicts: dict[ObjectRef, Verdict] = {}
        self._first: dict[str, ObjectRef] = {}
        self._visual = _VisualReps(self.rule, settings or IndexSettings())
        self._text = _TextReps(self.rule)

    def arrive(self, fingerprint: Fingerprint) -> Verdict:
        return self.arrive_many([fingerprint])[0]

    def arrive_many(self, prints: Sequence[Fingerprint]) -> list[Verdict]:
        """Verdicts for prints arriving in the order given, judged a block at a time."""
        verdicts: list[Verdict] = []
        while len(verdicts) < len(prints):
            verdicts += self._block(prints[len(verdicts):len(verdicts) + min(BLOCK, self._visual.room())])
        return verdicts

    def _block(self, prints: Sequence[Fingerprint]) -> list[Verdict]:
        visual = [p for p in prints if p.visual is not None]
        block = self._visual.prepare(visual) if visual else None
        rows = iter(range(len(visual)))
        verdicts = []
        for p in prints:
            row = next(rows) if p.visual is not None else None
            verdicts.append(self._judge(p, block, row))
            if block is not None and len(block.new) >= self._visual.room():
                break
        if block is not None:
            self._visual.commit(block)
        return verdicts

    def _judge(self, p: Fingerprint, block: _Block | None, row: int | None) -> Verdict:
        if p.ref in self.verdicts:
            return self.verdicts[p.ref]
        first = self._first.setdefault(p.sha256, p.ref)
        if first.object_id != p.ref.object_id:
            verdict = Verdict(first, "sha256")
        elif row is not None:
            verdict = self._near(self._visual.best(block, row), lambda: block.represent(row))
        elif p.text is not None:
            verdict = self._near(self._text.best(p), lambda: self._text.add(p))
        else:
            verdict = Verdict()
        self.verdicts[p.ref] = verdict
        return verdict

    @staticmethod
    def _near(match: tuple[ObjectRef, str] | None, become_representative) -> Verdict:
        if match is None:
            become_representative()
            return Verdict()
        return Verdict(*match)


def arrival_order(prints: Iterable[Fingerprint]) -> list[Fingerprint]:
    return sorted(prints, key=lambda p: (p.arrived, p.ref.bucket, p.ref.key, p.ref.etag))


def replay(prints: Iterable[Fingerprint], rule: NearRule | None = None,
           settings: IndexSettings | None = None) -> dict[ObjectRef, Verdict]:
    """The verdicts the objects got at arrival, recomputed from their fingerprints in arrival order."""
    index = DuplicateIndex(rule, settings)
    index.arrive_many(arrival_order(prints))
    return index.verdicts


def duplicate_groups(prints: Iterable[Fingerprint], verdicts: dict[ObjectRef, Verdict]) -> list[DuplicateGroup]:
    """Groups of two or more, by representative in arrival order: one "exact" group per sha256 held by
    several objects, one "near" group per representative with near duplicates."""
    ordered = arrival_order(prints)
    joined: dict[ObjectRef, list[Member]] = defaultdict(list)
    for p in ordered:
        verdict = verdicts[p.ref]
        if verdict.duplicate_of is not None:
            joined[verdict.duplicate_of].append(Member(p.ref, verdict.reason))
    groups = []
    for p in ordered:
        for kind in ("exact", "near"):
            members = [m for m in joined.get(p.ref, ()) if (m.reason == "sha256") == (kind == "exact")]
            if members:
                groups.append(DuplicateGroup(kind, p.ref, (Member(p.ref, None), *members)))
    return groups


def duplicates_json(groups: Iterable[DuplicateGroup]) -> dict:
    """`mediasift duplicates --json` (DESIGN §10)."""
    return {"groups": [g.as_json() for g in groups]}
