"""Search latency and recall of the tuned LanceDB vector index, at 100k and 1M rows.

    python bench/search.py [--sizes 100000,1000000] [--queries 200] [--json]

Vectors are 384-d and shaped like text embeddings (mediasift.local.synthetic.embedding_like_vectors). For each
size: index build time, then p50/p95 latency and recall@10 of (a) the tuned query (nprobes,
refine_factor from VectorTuning), (b) LanceDB's untuned defaults on the same index, (c) a flat scan
(exact, the recall reference), and (d) the full hybrid search path (LanceDB's hybrid query: the tuned vector
search and full text, fused by its RRF reranker; then `fuse`, as the searcher does across layers).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import numpy as np
from lancedb.index import FTS
from rich.console import Console
from rich.table import Table

from mediasift.local.synthetic import embedding_like_vectors, synthetic_rows
from mediasift.query.search import fuse, hybrid_search, vector_search
from mediasift.store.lance import LanceIndex, VectorTuning

DIM = 384
K = 10


def _ids(rows: list[dict]) -> set[str]:
    return {r["version_hash"] for r in rows}


def _timed(run, queries: np.ndarray) -> tuple[list[set[str]], list[float]]:
    results, latencies = [], []
    for query in queries:
        started = time.perf_counter()
        results.append(_ids(run(query)))
        latencies.append(time.perf_counter() - started)
    return results, latencies


def measure(size: int, n_queries: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        index = LanceIndex(folder)
        vectors = embedding_like_vectors(size, DIM, seed=0)
        queries = embedding_like_vectors(n_queries, DIM, seed=99)
        started = time.perf_counter()
        index.db.create_table("pages", synthetic_rows(vectors)).create_index("text", config=FTS(with_position=False))
        del vectors
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        index.ensure_vector_index("pages", force=True)
        build_s = time.perf_counter() - started
        table = index.table("pages")

        def flat(q):
            return (table.search(q).distance_type("cosine").limit(K).bypass_vector_index()
                    .select(["version_hash", "_distance"]).to_list())

        def untuned(q):
            return table.search(q).distance_type("cosine").limit(K).select(["version_hash", "_distance"]).to_list()

        def tuned(q):
            return vector_search(table, q, None, K, index.tuning)

        def hybrid(q):
            return [row for row, _ in fuse([hybrid_search(table, q, "document 42", None, K * 4, index.tuning)])[:K]]

        exact, flat_lat = _timed(flat, queries)
        report = {"rows": size, "load_s": round(load_s, 1), "index_build_s": round(build_s, 1), "modes": {}}
        for name, run in (("tuned", tuned), ("untuned defaults", untuned), ("flat scan", flat), ("hybrid", hybrid)):
            found, latencies = (exact, flat_lat) if name == "flat scan" else _timed(run, queries)
            recall = statistics.mean(len(f & e) / K for f, e in zip(found, exact, strict=True))
            report["modes"][name] = {
                "p50_ms": round(float(np.percentile(latencies, 50)) * 1000, 2),
                "p95_ms": round(float(np.percentile(latencies, 95)) * 1000, 2),
                "recall_at_10": round(recall, 3) if name != "hybrid" else None,
            }
        return report


def print_report(reports: list[dict], tuning) -> None:
    console = Console()
    table = Table("rows", "mode", "p50 ms", "p95 ms", "recall@10", "vs flat p50",
                  title=f"vector search, {DIM}-d, k={K}; IVF-PQ nprobes={tuning.nprobes} "
                        f"refine_factor={tuning.refine_factor}")
    for report in reports:
        flat_p50 = report["modes"]["flat scan"]["p50_ms"]
        for name, mode in report["modes"].items():
            recall = "-" if mode["recall_at_10"] is None else f"{mode['recall_at_10']:.3f}"
            table.add_row(f"{report['rows']:,}", name, f"{mode['p50_ms']:.1f}", f"{mode['p95_ms']:.1f}", recall,
                          f"{mode['p50_ms'] / flat_p50:.2f}×")
        table.add_section()
    console.print(table)
    for report in reports:
        console.print(f"{report['rows']:,} rows: loaded in {report['load_s']} s, index built in "
                      f"{report['index_build_s']} s")
    console.print("target: recall@10 ≥ 0.95 against the flat scan (tuned mode)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated row counts")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    reports = [measure(int(size), args.queries) for size in args.sizes.split(",")]
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        print_report(reports, VectorTuning())


if __name__ == "__main__":
    main()
