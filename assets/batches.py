"""What a run of a batch partition (`MEDIASIFT_PARTITION_MODE=batch`) tells Dagster: one materialization per
asset and one verdict per check, on the batch's partition, summing up its versions. Each version's own state,
rows and verdicts are in mediasift's tables (`mediasift objects show`, `mediasift status`), which is what lets
a 10M-object bucket keep thousands of partitions instead of millions, and a run's Dagster work stay the same
whatever the number of objects in it."""

from collections import Counter, defaultdict
from collections.abc import Iterator

import dagster as dg

from assets.layers import check_description, judge_layers, layer_key
from assets.source import SOURCE
from mediasift.extraction.layers.rows import LAYERS
from mediasift.run.versions import VersionResult
from mediasift.store import RowStores
from mediasift.store.expectations import CHECKS, RowExpectations

LISTED = 50
"""Versions named one by one in a batch's metadata; the rest are counted."""


def batch_materializations(results: list[VersionResult]) -> Iterator[dg.MaterializeResult]:
    done = [r for r in results if not r.failed]
    if not done:
        return
    states = Counter(r.state.value for r in results)
    yield dg.MaterializeResult(asset_key=SOURCE, metadata={
        "versions": len(results), **{f"state_{state}": count for state, count in sorted(states.items())},
        "bytes_read": sum(r.fetched.size for r in done if r.fetched is not None),
        "objects": dg.MetadataValue.md(_object_table(results))})
    for layer in LAYERS:
        yield dg.MaterializeResult(asset_key=layer_key(layer), metadata={
            "versions_with_rows": sum(1 for r in done if r.rows[layer]),
            "rows": sum(r.rows[layer] for r in done),
            "indexed_rows": sum(r.indexed_rows[layer] for r in done),
            "removed_rows": sum(r.removed_rows for r in done if r.removed),
            "extractors": ", ".join(sorted({r.extractors[layer] for r in done if layer in r.extractors})) or "none",
            "seconds": round(sum(r.seconds.get(layer, 0.0) for r in done), 3)})


def batch_checks(stores: RowStores, results: list[VersionResult], expected: RowExpectations
                 ) -> Iterator[dg.AssetCheckResult]:
    """One verdict per layer check for the whole batch: passed when every judged version of it passed; the
    metadata names the versions that did not, and why."""
    judged: Counter[tuple[str, str]] = Counter()
    failures: defaultdict[tuple[str, str], list[str]] = defaultdict(list)
    for result, verdict in judge_layers(stores, results, expected):
        judged[verdict.layer, verdict.check] += 1
        if not verdict.passed:
            failures[verdict.layer, verdict.check].append(f"- {check_description(verdict, result)}")
    if not judged:
        return
    for layer in LAYERS:
        for check in CHECKS:
            failed = failures[layer, check]
            yield dg.AssetCheckResult(
                asset_key=layer_key(layer), check_name=check, passed=not failed,
                description=f"{len(failed)} of {judged[layer, check]} versions failed" if failed else None,
                metadata={"versions_judged": judged[layer, check], "versions_failed": len(failed),
                          "failures": dg.MetadataValue.md("\n".join(failed[:LISTED]) or "none")})


def _object_table(results: list[VersionResult]) -> str:
    lines = ["| key | etag | state | reason |", "|---|---|---|---|"]
    lines += [f"| `{_cell(r.version.key)}` | {r.version.etag} | {r.state.value} | {_cell(r.reason or '')} |"
              for r in results[:LISTED]]
    if len(results) > LISTED:
        lines.append(f"| … {len(results) - LISTED} more | | | |")
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Keys may hold pipes and newlines; a table cell may not."""
    return " ".join(text.split()).replace("|", "\\|").replace("`", "'")[:200]
