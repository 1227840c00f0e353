"""End to end with the real Dagster daemon: SeaweedFS webhook → receiver → inbox → sensor → runs."""

import json
import os
from pathlib import Path

import dagster as dg
import pytest
from dagster._daemon.sensor import MIN_INTERVAL_LOOP_TIME
from typer.testing import CliRunner

from mediasift.cli import app
from mediasift.config import Settings
from mediasift.inbox import Inbox, State
from mediasift.local.stack import DagsterMode, Stack
from mediasift.store.s3 import ObjectStore
from tests.helpers import wait_for

SOURCE = dg.AssetKey(["mediasift", "source_object"])


def warm_forkserver(code_server_pid: int) -> bool:
    """The code server's child that multiprocessing runs as its forkserver, with the code location preloaded."""
    for child in Path(f"/proc/{code_server_pid}/task/{code_server_pid}/children").read_text().split():
        argv = Path(f"/proc/{child}/cmdline").read_bytes().decode().split("\0")
        if any("multiprocessing.forkserver" in arg and "dagster_project.run_worker" in arg for arg in argv):
            return True
    return False


@pytest.mark.slow
def test_uploads_overwrite_and_delete_end_as_the_right_partitions(tmp_path, monkeypatch):
    with Stack(Settings(home=tmp_path / "home"), DagsterMode.DAEMON) as stack:
        bucket = stack.settings.bucket
        client = ObjectStore.from_settings(stack.settings).client
        inbox = Inbox(stack.settings.inbox_url)
        first = client.put_object(Bucket=bucket, Key="docs/report v1.txt", Body=b"draft")["ETag"].strip('"')
        kept = client.put_object(Bucket=bucket, Key="images/ünï.bin", Body=bytes(range(256)))["ETag"].strip('"')
        client.put_object(Bucket=bucket, Key="tmp/scratch.txt", Body=b"scratch")
        second = client.put_object(Bucket=bucket, Key="docs/report v1.txt", Body=b"final text")["ETag"].strip('"')
        client.delete_object(Bucket=bucket, Key="tmp/scratch.txt")

        def settled():
            states = {
                key: [v.state for v in inbox.versions_of(bucket, key)]
                for key in ("docs/report v1.txt", "images/ünï.bin", "tmp/scratch.txt")
            }
            expected = {
                "docs/report v1.txt": [State.SUPERSEDED, State.UNSUPPORTED],
                "images/ünï.bin": [State.UNSUPPORTED],
                "tmp/scratch.txt": [State.DELETED],
            }
            return states == expected

        wait_for(settled, 240, "every version to settle")
        instance = dg.DagsterInstance.from_config(str(stack.dagster_home))
        partitions = set(instance.get_dynamic_partitions("object_versions"))
        all_versions = [v for key in ("docs/report v1.txt", "images/ünï.bin", "tmp/scratch.txt")
                        for v in inbox.versions_of(bucket, key)]
        assert partitions == {v.version_hash for v in all_versions}
        materialized = wait_for(
            lambda: (m := instance.get_materialized_partitions(SOURCE)) >= partitions and m,
            60, "materializations to be recorded",
        )
        assert materialized == partitions
        runs = instance.get_runs(filters=dg.RunsFilter(job_name="ingest_object_version"))
        assert len(runs) == 5
        assert all(run.tags["dagster/partition"] in partitions for run in runs)
        served_by = {(o.host, o.port) for o in (r.remote_job_origin.repository_origin.code_location_origin
                                                  for r in runs)}
        workspace = json.loads((stack.dagster_home / "workspace.yaml").read_text())["load_from"][0]["grpc_server"]
        assert served_by == {("127.0.0.1", workspace["port"])}, "runs launched by the stack's own code server"
        assert warm_forkserver(stack.code_server.pid), "its runs fork from a forkserver holding the code location"
        code_server = stack.code_server.pid
        (sensor,) = [s for s in instance.all_instigator_state() if s.name == "inbox_sensor"]

        def ticks() -> int:
            return len(instance.get_ticks(sensor.instigator_origin_id, sensor.selector_id))

        settled_at = ticks()
        wait_for(lambda: ticks() >= settled_at + 3, 180, "three more sensor ticks once the work was done")
        with runs[0].remote_job_origin.repository_origin.code_location_origin.create_location(instance) as served:
            (repository,) = served.get_repositories().values()
            interval = repository.get_sensor("inbox_sensor").min_interval_seconds
        assert interval < MIN_INTERVAL_LOOP_TIME, \
            f"a {interval} s minimum makes the daemon skip every other {MIN_INTERVAL_LOOP_TIME} s sensor loop"

        monkeypatch.setenv("MEDIASIFT_HOME", str(stack.home))
        shown = CliRunner().invoke(app, ["objects", "show", f"s3://{bucket}/docs/report v1.txt"],
                                   env={"COLUMNS": "200"})
        assert shown.exit_code == 0, shown.output
        assert first in shown.output and second in shown.output
        assert "superseded" in shown.output and "unsupported: text/plain" in shown.output
        current = inbox.versions_of(bucket, "docs/report v1.txt")[1]
        assert current.sha256[:16] in shown.output
        assert kept == inbox.versions_of(bucket, "images/ünï.bin")[0].etag

        def runs_in_status() -> dict:
            status = CliRunner().invoke(app, ["status", "--json"])
            assert status.exit_code == 0, status.output
            return json.loads(status.output)["runs"]["runs"]

        wait_for(lambda: runs_in_status() == {"succeeded": 5}, 60,
                 "every run process's metrics in the directory status reads")
    with pytest.raises(ProcessLookupError):
        os.kill(code_server, 0)
