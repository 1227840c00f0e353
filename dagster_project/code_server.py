"""The stack's Dagster code server, with warm run workers.

Dagster's code server starts every run in a fresh interpreter (multiprocessing "spawn"), which imports Dagster
and loads the code location again before the run's first object: seconds of CPU per run, and about 2 s of
the time from `put_object` to materialized on two cores (bench/latency.py). Here a forkserver imports the
code location once, when the code server starts, and each run is a fork of it: the same `start_run_in_
subprocess` Dagster would run, in a process that has everything imported already. The forkserver only imports
(it opens no connection, starts no run), so a fork of it is as clean as a spawn.

    python -m dagster_project.code_server [the arguments of `dagster api grpc`]
"""

import multiprocessing
import multiprocessing.forkserver
import sys
import warnings

from dagster._cli import main as dagster_main
from dagster._grpc import server

PRELOAD = ["dagster_project.code_server", "dagster_project.definitions", "lancedb", "ray"]
"""Imported by the forkserver: this module (for the warning filter below), the code location (and, through it,
Dagster and mediasift's run path), and the libraries the run path imports only when it first needs them, so
the receiver and the CLI stay light: LanceDB alone was two thirds of a 100-object batch run's CPU in its
first minute (py-spy). LanceDB resets its event loop and runtime in a forked child (and advises a forkserver,
whose parent never uses it, as here). Not polars: its thread pool starts at import and is not reset on fork."""
warnings.filterwarnings("ignore", message="lancedb fork support is experimental", category=RuntimeWarning)
"""LanceDB warns in every forked child that state mid-operation at the fork may deadlock; the forkserver only
ever imported it."""


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
