"""What the run processes measure, for /metrics and `mediasift status`: extraction seconds per layer, the
number of object versions per run, runs by outcome and failed versions by reason.

Every run is its own short-lived process, so its samples would die with it. With `PROMETHEUS_MULTIPROC_DIR`
set (the embedded stack sets it to `MEDIASIFT_HOME/metrics` for the Dagster processes it starts),
prometheus-client writes them to files there, and the receiver's /metrics and `mediasift status` add them
up with its multiprocess collector. Without it the samples stay in the run process (nothing is written).
A receiver on another machine sees the runs of its own machine only: scrape each, or run a Pushgateway.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from mediasift.run.versions import VersionResult

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_DIR = "metrics"
"""Under MEDIASIFT_HOME: where the stack's run processes write their samples."""
SECONDS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500)


class RunMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.extraction = Histogram("mediasift_extraction_seconds", "Extraction time of one object version per layer",
                                    ["layer"], buckets=SECONDS_BUCKETS, registry=registry)
        self.batch = Histogram("mediasift_run_versions", "Object versions per ingest run", buckets=BATCH_BUCKETS,
                               registry=registry)
        self.runs = Counter("mediasift_runs_total", "Ingest runs by outcome", ["outcome"], registry=registry)
        self.failures = Counter("mediasift_version_failures_total", "Failed object versions by reason",
                                ["reason", "dead_lettered"], registry=registry)

    def record(self, results: Iterable[VersionResult]) -> None:
        results = list(results)
        self.batch.observe(len(results))
        failed = [r for r in results if r.failed]
        self.runs.labels("failed" if failed else "succeeded").inc()
        for result in results:
            for layer, seconds in result.seconds.items():
                self.extraction.labels(layer).observe(seconds)
        for result in failed:
            self.failures.labels(failure_reason(result.reason), str(result.permanent).lower()).inc()


def failure_reason(error: str | None) -> str:
    """A bounded label for an error message: its exception name (`MediaError`, `LockHeld`, `OSError`), or the
    stage that failed (`index write failed`)."""
    if not error:
        return "unknown"
    head = error.split(":", 1)[0].strip()
    if (head.isidentifier() and head[0].isupper()) or re.fullmatch(r"[a-z]+( [a-z]+){0,4}", head):
        return head
    return "other"


@cache
def run_metrics() -> RunMetrics:
    """Registered once per process on the default registry (multiprocess-aware when the env var is set)."""
    return RunMetrics()


def metrics_dir(home: Path) -> Path:
    return Path(home) / METRICS_DIR


def fresh_metrics_dir(home: Path) -> Path:
    """Emptied at stack start, as prometheus-client asks: files of dead processes from an earlier stack
    would otherwise count again."""
    path = metrics_dir(home)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    return path


class RunsCollector(Collector):
    """The run processes' samples in `directory`, read at each scrape (the directory may appear only once
    the stack starts Dagster, after the receiver)."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def collect(self):
        files = [str(path) for path in self.directory.glob("*.db")]
        return MultiProcessCollector.merge(files, accumulate=True) if files else []


def summary(directory: Path) -> dict:
    """What `mediasift status` shows of the runs' metrics: runs by outcome, failures by reason, and per layer
    the number of extractions and their mean seconds."""
    registry = CollectorRegistry()
    registry.register(RunsCollector(directory))
    found: dict = {"runs": {}, "failures": {}, "extraction_seconds": {}, "versions_per_run": None}
    sums: dict[str, dict[str, float]] = {}
    for family in registry.collect():
        for s in family.samples:
            if s.name == "mediasift_runs_total":
                found["runs"][s.labels["outcome"]] = int(s.value)
            elif s.name == "mediasift_version_failures_total":
                found["failures"][s.labels["reason"]] = found["failures"].get(s.labels["reason"], 0) + int(s.value)
            elif s.name in ("mediasift_extraction_seconds_sum", "mediasift_extraction_seconds_count"):
                sums.setdefault(s.labels["layer"], {})[s.name.rsplit("_", 1)[1]] = s.value
            elif s.name in ("mediasift_run_versions_sum", "mediasift_run_versions_count"):
                sums.setdefault("", {})[s.name.rsplit("_", 1)[1]] = s.value
    for layer, value in sums.items():
        mean = round(value["sum"] / value["count"], 4) if value.get("count") else None
        if layer:
            found["extraction_seconds"][layer] = {"count": int(value.get("count", 0)), "mean": mean}
        else:
            found["versions_per_run"] = mean
    return found
