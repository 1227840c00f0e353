"""Every benchmark script still imports and explains itself: they run by hand (`make bench`), not in
the suite, so a renamed function they use would otherwise go unnoticed."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py")))
def test_benchmark_script_starts(script):
    result = subprocess.run([sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True,
                            timeout=120, cwd=BENCH.parent)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout


def test_partitions_benchmark_measures_every_ui_query_at_the_smallest_size():
    """bench/partitions.py parses its options, finds the UI's queries in the installed webserver's bundle and
    answers them for a tiny partitioned instance (no webserver: the HTTP path is the same documents)."""
    result = subprocess.run([sys.executable, str(BENCH / "partitions.py"), "--sizes", "20", "--materialized-share",
                             "0.1", "--repeats", "1", "--no-http", "--json"],
                            capture_output=True, text=True, timeout=120, cwd=BENCH.parent)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(result.stdout)
    assert {row["query"] for row in rows} == {"AssetViewDefinitionQuery", "AssetGraphLiveQuery", "AssetHealthQuery",
                                              "AssetOverviewMetadataEventsQuery", "PartitionHealthQuery",
                                              "AssetPartitionDetailQuery", "page"}
    assert {(row["partitions"], row["materialized"], row["via"]) for row in rows} == {(20, 2, "in-process")}
