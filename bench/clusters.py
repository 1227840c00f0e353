"""Clustering time, peak memory and quality at 10k and 100k objects: hdbscan against fast_hdbscan, with
scikit-learn's HDBSCAN as a reference.

    python bench/clusters.py [--sizes 10000,100000] [--baseline-max 20000] [--smoke] [--json]

Data: 1280-d unit vectors (the `visual` space's shape) in 20 groups of unequal size (members' cosine about
0.5), so the truth is known and the adjusted Rand index says whether a backend
found it. The PCA reduction (as `mediasift.analysis.clusters` does it) is timed once per size; every
backend then clusters the same reduced points with the same min_cluster_size/min_samples, each in its own
process, so its peak memory (peak RSS over the RSS before the fit) is its own. fast_hdbscan compiles on
first use (numba, ~30 s on a machine's first run, cached after); a small warm-up fit keeps that out of the
timing. Ratios are against hdbscan at the same size, measured in the same run. scikit-learn's HDBSCAN
builds its tree in O(n²) on these dims, so it runs only up to --baseline-max objects.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 1280
GROUPS = 20
BACKENDS = ("hdbscan", "fast_hdbscan", "sklearn")


def synthetic(n: int, dim: int = DIM, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors in groups of sizes ∝ 1/√rank around random centres, and the group of each."""
    rng = np.random.default_rng(seed)
    weights = 1 / np.sqrt(np.arange(1, GROUPS + 1))
    truth = np.sort(rng.choice(GROUPS, n, p=weights / weights.sum()))
    vectors = np.empty((n, dim), np.float32)
    for group in range(GROUPS):
        rows = truth == group
        centre = rng.standard_normal(dim, dtype=np.float32)
        vectors[rows] = centre + rng.standard_normal((int(rows.sum()), dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, truth


def _rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reduce(n: int, folder: str, queue) -> None:
    from sklearn.decomposition import PCA  # noqa: F401  (imported before the clock starts)

    from mediasift.analysis.clusters import ClusterSettings, reduce

    vectors, truth = synthetic(n)
    s, before = ClusterSettings(), _rss_mib()
    started = time.perf_counter()
    points = reduce(vectors, s.reduced_dim, s.pca_sample, s.seed)
    seconds = time.perf_counter() - started
    np.savez(Path(folder) / f"{n}.npz", points=points, truth=truth)
    queue.put({"seconds": seconds, "peak_mib": _peak_mib() - before})


def _fit(backend: str, points: np.ndarray):
    from mediasift.analysis.clusters import ClusterSettings, density_labels

    s = ClusterSettings()
    if backend == "sklearn":
        from sklearn.cluster import HDBSCAN

        n = len(points)
        return HDBSCAN(min_cluster_size=s.cluster_size(n), min_samples=s.samples(n), copy=True).fit_predict(points)
    return density_labels(points, ClusterSettings(backend=backend))


def _cluster(backend: str, n: int, folder: str, queue) -> None:
    from sklearn.metrics import adjusted_rand_score

    data = np.load(Path(folder) / f"{n}.npz")
    points, truth = data["points"], data["truth"]
    _fit(backend, points[np.random.default_rng(1).choice(len(points), min(len(points), 500), replace=False)])
    before = _rss_mib()
    started = time.perf_counter()
    labels = _fit(backend, points)
    seconds = time.perf_counter() - started
    queue.put({"seconds": seconds, "peak_mib": max(_peak_mib() - before, 0.0),
               "ari": adjusted_rand_score(truth, labels), "clusters": int(labels.max() + 1),
               "noise": float((labels < 0).mean())})


def _in_child(target, *args) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=target, args=(*args, queue))
    child.start()
    result = queue.get()
    child.join()
    return result


def measure(sizes: list[int], baseline_max: int) -> list[dict]:
    from mediasift.analysis.clusters import ClusterSettings

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for n in sizes:
            rows.append({"size": n, "step": f"pca {DIM}→{ClusterSettings().reduced_dim}",
                         **_in_child(_reduce, n, folder)})
            for backend in BACKENDS:
                if backend == "sklearn" and n > baseline_max:
                    rows.append({"size": n, "step": backend, "skipped": f"over --baseline-max {baseline_max}"})
                    continue
                rows.append({"size": n, "step": backend, **_in_child(_cluster, backend, n, folder)})
    reference = {r["size"]: r["seconds"] for r in rows if r["step"] == "hdbscan"}
    for r in rows:
        if "seconds" in r and r["step"] in BACKENDS:
            r["ratio"] = r["seconds"] / reference[r["size"]]
    return rows


def show(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"clustering {DIM}-d objects in {GROUPS} groups")
    for column in ("objects", "step", "seconds", "× hdbscan", "peak MiB", "ARI", "clusters", "noise"):
        table.add_column(column, justify="left" if column == "step" else "right")
    for r in rows:
        if "skipped" in r:
            table.add_row(f"{r['size']:,}", r["step"], r["skipped"], "", "", "", "", "")
            continue
        quality = [f"{r['ari']:.3f}", str(r["clusters"]), f"{r['noise']:.1%}"] if "ari" in r else ["", "", ""]
        table.add_row(f"{r['size']:,}", r["step"], f"{r['seconds']:.2f}",
                      f"{r['ratio']:.2f}" if "ratio" in r else "", f"{r['peak_mib']:.0f}", *quality)
    Console(width=120).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated object counts")
    parser.add_argument("--baseline-max", type=int, default=20_000,
                        help="largest size scikit-learn's HDBSCAN (the O(n²) reference) runs at")
    parser.add_argument("--smoke", action="store_true", help="one small size, every backend: checks the script")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = [2000] if args.smoke else [int(s) for s in args.sizes.split(",")]
    rows = measure(sizes, args.baseline_max)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        show(rows)


if __name__ == "__main__":
    main()
