"""Every benchmark script still imports and explains itself: they run by hand (`make bench`), not in
the suite, so a renamed function they use would otherwise go unnoticed."""

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
