"""What every run process starts with: imported once by the stack's code server's forkserver
(dagster_project/code_server.py), so each run, forked from it, finds it all loaded.

That is the code location (and, through it, Dagster and mediasift's run path); the modules a run otherwise
imports only when it first needs them, so the receiver and the CLI stay light (LanceDB alone was two thirds
of a 100-object batch run's CPU in its first minute, py-spy; Dagster's storage modules another tenth); and
boto3's S3 service model, which each process otherwise parses from JSON when it makes its first client.
Not polars: its thread pool starts at import and is not reset on fork. LanceDB resets its event loop and
runtime in a forked child, and advises a forkserver, whose parent never uses it, as here.
"""

import importlib
import warnings

from mediasift.store.s3 import s3_client

WARM_MODULES = ("dagster_project.definitions", "dagster_project.storage", "dagster._core.storage.base_storage",
                "lancedb", "ray", "upath")

warnings.filterwarnings("ignore", message="lancedb fork support is experimental", category=RuntimeWarning)
"""LanceDB warns in every forked child that state mid-operation at the fork may deadlock; the forkserver only
ever imported it."""
for name in WARM_MODULES:
    importlib.import_module(name)
s3_client(None, "us-east-1", "not-a-key", "not-a-secret")
"""A client made, never used: it leaves the S3 model parsed in boto3's default session, which every later
client of the process shares. Given keys, it looks for no credentials (and so reaches no network)."""
