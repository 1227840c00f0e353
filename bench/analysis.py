"""Duplicate grouping and anomaly rescoring at 10k, 100k and 1M objects, beside brute-force baselines.

    python bench/analysis.py [--sizes 10000,100000,1000000] [--dim 1280] [--store float32|float16]
                             [--arrivals 200] [--baseline-rows 20000] [--only duplicates,anomalies,index]
                             [--smoke] [--json]

Data: L2-normalised vectors shaped like embeddings (mediasift.local.synthetic: clusters on a 48-d
subspace plus a little noise), made 65,536 rows at a time; the last 5% of each chunk are planted near
duplicates (an earlier row of the chunk plus noise, cosine ≈ 0.97). Objects arrive in row order.
1M × 1280 float32 is 5 GB and each analysis's index holds another copy: `--store float16` halves that
copy, `--dim 256` shrinks everything (the index projects to 256-d either way).

Sections (each a function of the data that returns rows for the one table; clustering can join them):
- duplicates: `DuplicateIndex.arrive_many` over every object in arrival order (what `replay` does) against
  a brute-force kNN (4 neighbours of every object among all). Quality: the share of planted copies judged
  near duplicates, of all and of those whose source is a representative (a copy of a member may rightly
  stay apart: it can be too far from the member's representative), and up to --baseline-rows the share
  of verdicts equal to an exact index's. Then the cost of one more object's verdict (`arrive`).
- anomalies: `rescore` (leave-one-out 5-NN of every object, then percentiles) against the same
  brute-force kNN. Quality: recall@5 of the index's neighbours and the mean |Δ score| against exact
  neighbours, on 1,024 sampled objects. Then the cost of one more object's score (`score_arrival`).
- index: the size-dependent part of both arrivals alone, one query against a VectorIndex of all n rows
  built at once; it reaches 1M × 1280 in 2 minutes where the replay took 20 and the rescore 10 here.

Per-object costs (target: < 5 ms at 1M) are p50 over --arrivals objects (half new, half copies), beside
one brute-force scan of the n rows. Baselines above --baseline-rows are timed on 1,024 queries and scaled
to n queries (marked ~): brute force costs the same per query. Peak memory is the process's resident set
sampled every 10 ms during the step, above what it was when the step began. Times are wall clock on a
shared machine; the ratio column (baseline time / ours) is the comparable number.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from rich.console import Console
from rich.table import Table

from mediasift.analysis.anomalies import rescore, score_arrival
from mediasift.analysis.duplicates import SEARCH_K, DuplicateIndex, Fingerprint
from mediasift.analysis.reference import IndexSettings, ObjectRef, VectorIndex
from mediasift.local.synthetic import embedding_like_vectors

CHUNK = 65_536
PLANTED = 0.05
COPY_NOISE = 0.25
"""Norm of the noise added to a planted copy: cosine ≈ 1 / sqrt(1 + 0.25²) ≈ 0.97."""
SAMPLE_QUERIES = 1024
K = 5


@dataclass
class Data:
    vectors: np.ndarray
    copies: np.ndarray
    sources: np.ndarray
    """sources[i]: the row copies[i] was made from."""
    settings: IndexSettings
    args: argparse.Namespace

    @property
    def n(self) -> int:
        return len(self.vectors)


@dataclass
class Row:
    size: int
    step: str
    ours_s: float
    baseline_s: float | None
    baseline_estimated: bool
    ours_mib: float
    baseline_mib: float | None
    quality: str
    notes: dict = field(default_factory=dict)


def synthetic(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vectors, rows of the planted copies, the rows they were made from)."""
    vectors = np.empty((n, dim), dtype=np.float32)
    copies, origins = [], []
    rng = np.random.default_rng(seed)
    for number, lo in enumerate(range(0, n, CHUNK)):
        chunk = embedding_like_vectors(min(CHUNK, n - lo), dim, seed=seed * 1000 + number)
        planted = np.arange(len(chunk) - int(len(chunk) * PLANTED), len(chunk))
        sources = rng.integers(0, planted[0], len(planted)) if len(planted) else planted
        noisy = chunk[sources] + rng.normal(size=(len(planted), dim)).astype(np.float32) * (COPY_NOISE / math.sqrt(dim))
        chunk[planted] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
        vectors[lo:lo + len(chunk)] = chunk
        copies.append(planted + lo)
        origins.append(sources + lo)
    return vectors, np.concatenate(copies), np.concatenate(origins)


def reference(i: int) -> ObjectRef:
    return ObjectRef("bench", f"objects/{i}", f"{i:032x}", f"{i:016x}")


def fingerprints(vectors: np.ndarray, start: int = 0) -> list[Fingerprint]:
    return [Fingerprint(reference(start + i), start + i, f"{start + i:064x}", v) for i, v in enumerate(vectors)]


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


@contextmanager
def measured() -> Iterator[dict]:
    """Wall time and peak resident memory above the start, sampled every 10 ms by a thread."""
    result, start_rss, stop = {"peak": 0.0}, _rss_mib(), threading.Event()

    def sample() -> None:
        while not stop.wait(0.01):
            result["peak"] = max(result["peak"], _rss_mib() - start_rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        yield result
    finally:
        result["s"] = time.perf_counter() - started
        stop.set()
        sampler.join()
        result["mib"] = max(result["peak"], _rss_mib() - start_rss)


def brute_knn(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest by cosine (inner product of unit rows): what NearestNeighbors(algorithm="brute")
    computes, in numpy chunks, without the normalised copy of the rows it makes (5 GB at 1M × 1280)."""
    best_s = np.full((len(queries), 0), -np.inf, np.float32)
    best_i = np.full((len(queries), 0), -1, np.int64)
    for lo in range(0, len(vectors), 16_384):
        chunk = vectors[lo:lo + 16_384]
        scores = np.hstack([best_s, queries @ chunk.T])
        ids = np.hstack([best_i, np.broadcast_to(np.arange(lo, lo + len(chunk)), (len(queries), len(chunk)))])
        keep = np.argpartition(-scores, min(k, scores.shape[1]) - 1, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(scores, keep, 1), np.take_along_axis(ids, keep, 1)
    order = np.argsort(-best_s, axis=1)
    return np.take_along_axis(best_s, order, 1), np.take_along_axis(best_i, order, 1)


def baseline(data: Data, k: int) -> tuple[float, float, bool, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Brute-force kNN of every object (seconds, MiB, estimated?), and its answer for the sampled queries."""
    sample = np.random.default_rng(1).choice(data.n, min(SAMPLE_QUERIES, data.n), replace=False)
    estimated = data.n > data.args.baseline_rows
    queries = sample if estimated else np.arange(data.n)
    with measured() as cost:
        found = [brute_knn(data.vectors, data.vectors[queries[lo:lo + 1024]], k) for lo in range(0, len(queries), 1024)]
    similarities, ids = np.vstack([f[0] for f in found]), np.vstack([f[1] for f in found])
    if not estimated:
        similarities, ids = similarities[sample], ids[sample]
    seconds = cost["s"] * (data.n / len(sample) if estimated else 1)
    return seconds, cost["mib"], estimated, (sample, similarities, ids)


def fresh_objects(data: Data) -> np.ndarray:
    """Objects that arrive after all n: half new, half copies of earlier ones."""
    fresh = synthetic(data.args.arrivals, data.vectors.shape[1], seed=7)[0]
    half = data.args.arrivals // 2
    fresh[:half] = data.vectors[np.random.default_rng(2).choice(data.n, half)]
    return fresh


def bench_duplicates(data: Data) -> list[Row]:
    index = DuplicateIndex(settings=data.settings)
    prints = fingerprints(data.vectors)
    with measured() as ours:
        verdicts = index.arrive_many(prints)
    quality = _planted_found(verdicts, data)
    if data.n <= data.args.baseline_rows:
        exact = DuplicateIndex(settings=replace(data.settings, ivf_from=2**62)).arrive_many(prints)
        agree = statistics.mean(a == b for a, b in zip(verdicts, exact, strict=True))
        quality += f"; exact index: {_planted_found(exact, data)}, verdicts as exact {agree:.4f}"
    seconds, mib, estimated, _ = baseline(data, SEARCH_K)
    arriving = fingerprints(fresh_objects(data), start=data.n)
    spent = _latencies(lambda i: index.arrive(arriving[i]), len(arriving))
    return [Row(data.n, "duplicates: replay", ours["s"], seconds, estimated, ours["mib"], mib, quality,
                {"representatives": sum(v.duplicate_of is None for v in verdicts)}),
            _arrival_row(data, "arrival: duplicate verdict", spent)]


def _planted_found(verdicts: list, data: Data) -> str:
    """Planted copies judged near duplicates: of all, and of those whose source is a representative (a
    copy of a member may rightly be too far from the member's representative)."""
    found = np.array([verdicts[i].kind == "near" for i in data.copies])
    of_representatives = np.array([verdicts[i].duplicate_of is None for i in data.sources])
    return f"copies found {found.mean():.3f}, copies of representatives {found[of_representatives].mean():.3f}"


def bench_anomalies(data: Data) -> list[Row]:
    refs = [reference(i) for i in range(data.n)]
    with measured() as ours:
        ref_set, rows = rescore(refs, data.vectors, k=K, settings=data.settings)
    seconds, mib, estimated, (sample, similarities, ids) = baseline(data, K + 1)
    exact_ids = [set(row[row != i][:K]) for i, row in zip(sample, ids, strict=True)]
    ours_ids = [set(row) for row in ref_set.neighbours(data.vectors[sample], sample)[1]]
    recall = statistics.mean(len(a & b) / K for a, b in zip(ours_ids, exact_ids, strict=True))
    exact_distance = np.array([np.mean(1 - s[i != own][:K]) for s, i, own in zip(similarities, ids, sample,
                                                                                   strict=True)])
    shift = np.abs(ref_set.percentile(exact_distance) - np.array([rows[i].score for i in sample])).mean()
    fresh = fresh_objects(data)
    spent = _latencies(lambda i: score_arrival(ref_set, reference(data.n + i), fresh[i]), len(fresh))
    return [Row(data.n, "anomalies: rescore", ours["s"], seconds, estimated, ours["mib"], mib,
                f"recall@{K} {recall:.3f}, |Δscore| {shift:.4f}"),
            _arrival_row(data, "arrival: anomaly score", spent)]


def bench_index(data: Data) -> list[Row]:
    """The size-dependent part of both arrivals, alone: one query against an index of all n rows, built
    at once (cheaper to reach 1M × 1280 than a full replay or rescore)."""
    index = VectorIndex(data.vectors.shape[1], data.settings)
    with measured() as built:
        index.add(data.vectors)
    fresh = fresh_objects(data)
    spent = _latencies(lambda i: index.search(fresh[i], K + 1), len(fresh))
    scan = _latencies(lambda i: brute_knn(data.vectors, fresh[i:i + 1], K + 1), 20)
    p50, p95 = (float(np.percentile(spent, q)) for q in (50, 95))
    return [Row(data.n, "index: build", built["s"], None, False, built["mib"], None,
                "inverted file" if index.trained else "exact"),
            Row(data.n, "index: one query", p50, float(np.median(scan)), False, 0.0, None,
                f"p95 {p95 * 1000:.2f} ms", {"per_object": True})]


def _latencies(run: Callable[[int], object], count: int) -> list[float]:
    spent = []
    for i in range(count):
        started = time.perf_counter()
        run(i)
        spent.append(time.perf_counter() - started)
    return spent


def _arrival_row(data: Data, step: str, spent: list[float]) -> Row:
    """Per-object cost beside one brute-force scan of the n rows (the exact 5-NN of one query)."""
    scan = _latencies(lambda i: brute_knn(data.vectors, data.vectors[i:i + 1], K + 1), 20)
    p50, p95 = (float(np.percentile(spent, q)) for q in (50, 95))
    return Row(data.n, step, p50, float(np.median(scan)), False, 0.0, None, f"p95 {p95 * 1000:.2f} ms",
               {"per_object": True})


SECTIONS: dict[str, Callable[[Data], list[Row]]] = {
    "duplicates": bench_duplicates, "anomalies": bench_anomalies, "index": bench_index}


def print_table(rows: list[Row], title: str, console: Console) -> None:
    """The one table every section's rows go to."""
    table = Table("objects", "step", "ours", "baseline", "baseline/ours", "ours MiB", "baseline MiB", "quality",
                  title=title)
    for row in rows:
        per = row.notes.get("per_object")
        unit = (lambda s: f"{s * 1000:.2f} ms") if per else (lambda s: f"{s:.1f} s")
        base = "-" if row.baseline_s is None else ("~" if row.baseline_estimated else "") + unit(row.baseline_s)
        ratio = "-" if row.baseline_s is None else _times(row.baseline_s / row.ours_s)
        memory = ("-" if per else f"{row.ours_mib:,.0f}",
                  "-" if row.baseline_mib is None else f"{row.baseline_mib:,.0f}")
        table.add_row(f"{row.size:,}", row.step, unit(row.ours_s), base, ratio, *memory,
                      row.quality + "".join(f", {k} {v:,}" for k, v in row.notes.items() if k != "per_object"))
    console.print(table)


def _times(ratio: float) -> str:
    return f"{ratio:,.0f}×" if ratio >= 10 else f"{ratio:.2g}×"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated object counts")
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--store", choices=["float32", "float16"], default="float32",
                        help="how the index keeps the full vectors")
    parser.add_argument("--arrivals", type=int, default=200)
    parser.add_argument("--baseline-rows", type=int, default=20_000,
                        help="above this, brute-force baselines are timed on 1,024 queries and scaled")
    parser.add_argument("--ivf-from", type=int, default=IndexSettings().ivf_from)
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"sections, of {','.join(SECTIONS)}")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the script runs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.sizes, args.dim, args.arrivals, args.baseline_rows, args.ivf_from = "3000", 64, 20, 5000, 1000
    settings = IndexSettings(ivf_from=args.ivf_from, dtype=args.store)
    rows: list[Row] = []
    for size in (int(s) for s in args.sizes.split(",")):
        data = Data(*synthetic(size, args.dim), settings, args)
        for name in args.only.split(","):
            rows += SECTIONS[name](data)
            print(f"{size:,} {name} done", file=sys.stderr, flush=True)
        del data
    title = (f"duplicates and anomalies, {args.dim}-d synthetic embeddings, index {args.store} "
             f"(exact below {settings.ivf_from:,} rows, then {settings.reduced_dim}-d IVF, nprobe {settings.nprobe})")
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
    print_table(rows, title, Console(file=sys.stderr if args.json else None, width=180))


if __name__ == "__main__":
    main()
