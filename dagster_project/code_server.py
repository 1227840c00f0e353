"""The stack's Dagster code server, with warm run workers.

Dagster's code server starts every run in a fresh interpreter (multiprocessing "spawn"), which imports Dagster
and loads the code location again before the run's first object: seconds of CPU per run, and about 2 s of
the time from `put_object` to materialized on two cores (bench/latency.py). Here a forkserver imports the
code location once, when the code server starts, and each run is a fork of it: the same `start_run_in_
subprocess` Dagster would run, in a process that has everything imported already (dagster_project/run_worker.py
says what). The forkserver only imports (it opens no connection, starts no run), so a fork of it is as clean as
a spawn.

    python -m dagster_project.code_server [the arguments of `dagster api grpc`]
"""

import multiprocessing
import multiprocessing.forkserver
import sys

from dagster._cli import main as dagster_main
from dagster._grpc import server

PRELOAD = ["dagster_project.run_worker"]
"""What the forkserver imports, and so what every run starts with."""


class WarmRunsApiServer(server.DagsterApiServer):
    """Dagster's gRPC API server, its run processes forked from a warm forkserver."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._mp_ctx = warm_context()


def warm_context() -> multiprocessing.context.BaseContext:
    """Started at once, so the first run finds it warm too."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    multiprocessing.forkserver.ensure_running()
    return context


def main() -> None:
    server.DagsterApiServer = WarmRunsApiServer
    sys.argv = ["dagster", "api", "grpc", *sys.argv[1:]]
    sys.exit(dagster_main())


if __name__ == "__main__":
    main()
