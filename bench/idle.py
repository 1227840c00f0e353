"""What the Dagster daemon and code server cost while nothing arrives: their CPU in cores, idle.

    python bench/idle.py [--seconds 120] [--warmup 30] [--json]

Every sensor tick, run-queue poll and monitoring pass costs CPU whether or not objects arrive, so a burst
pays it for as long as it takes to drain (bench/burst.py counts it per object). One embedded stack with
the daemon (no Ray) is started on Dagster's stock SQLite storage, then on the storage mediasift tunes
(dagster_project/storage.py); after `--warmup` seconds the CPU of each process role is taken from /proc
over `--seconds`. The ratio of the two is the number to read: both ran on this machine, one after the other.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from throughput import CpuByRole

from mediasift.config import Settings
from mediasift.local.stack import DagsterMode, Stack

DAGSTER = "Dagster daemon + code server"


def idle(home: Path, tuned: bool, warmup: float, seconds: float) -> dict:
    stack = Stack(Settings(home=home, ray="off"), DagsterMode.DAEMON)
    stack.tuned_sqlite_storage = tuned
    with stack:
        time.sleep(warmup)
        with CpuByRole() as cpu:
            time.sleep(seconds)
    used = cpu.totals()
    return {"storage": "mediasift (tuned SQLite storage)" if tuned else "Dagster's stock SQLite storage",
            "seconds": seconds, "cpu_s": used, "dagster_cores": round(used.get(DAGSTER, 0.0) / seconds, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--warmup", type=float, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        results = [idle(Path(tmp) / name, tuned, args.warmup, args.seconds)
                   for name, tuned in (("stock", False), ("tuned", True))]
        stock, tuned = results
        ratio = round(tuned["dagster_cores"] / stock["dagster_cores"], 2) if stock["dagster_cores"] else None
        if args.json:
            print(json.dumps({"results": results, "ratio": ratio}))
            return
        table = Table("storage", "daemon + code server (cores)", "CPU-s by role",
                      title=f"idle for {args.seconds:.0f} s after {args.warmup:.0f} s", title_justify="left")
        for r in results:
            table.add_row(r["storage"], f"{r['dagster_cores']:.4f}", json.dumps(r["cpu_s"]))
        Console().print(table)
        Console().print(f"tuned ÷ stock: {ratio}")


if __name__ == "__main__":
    main()
