"""The event log storage the stack configures: Dagster's SQLite files and schema, each database kept open.
Other processes, and Dagster's stock storage, must read and write the same files as before."""

import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from dagster_project.storage import KeptOpenSqliteEventLogStorage

PARTITIONS = dg.StaticPartitionsDefinition([f"p{i:02d}" for i in range(24)])
LAYER = dg.AssetKey("layer")


@dg.asset(partitions_def=PARTITIONS)
def source(context: dg.AssetExecutionContext) -> None:
    for key in context.partition_keys:
        context.log_event(dg.AssetMaterialization(LAYER, partition=key))


def kept_open_home(home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump({
        "event_log_storage": {"module": "dagster_project.storage", "class": "KeptOpenSqliteEventLogStorage",
                              "config": {"base_dir": str(home / "history" / "runs")}},
        "telemetry": {"enabled": False}}))
    return home


def materialized(storage, asset_key: dg.AssetKey) -> list[str]:
    return sorted(storage.get_materialized_partitions(asset_key))


def test_the_instance_uses_it_and_stock_storage_reads_what_it_wrote(tmp_path):
    instance = dg.DagsterInstance.from_config(str(kept_open_home(tmp_path)))
    assert isinstance(instance.event_log_storage, KeptOpenSqliteEventLogStorage)
    result = dg.materialize([source], instance=instance, partition_key="p03")
    assert result.success
    stock = SqliteEventLogStorage(str(tmp_path / "history" / "runs"))
    assert materialized(stock, LAYER) == ["p03"]
    assert materialized(stock, source.key) == ["p03"]
    assert len(stock.get_logs_for_run(result.run_id)) == len(instance.all_logs(result.run_id))


def test_processes_writing_at_once_lose_no_event(tmp_path):
    """Connections held open by several processes: SQLite's locking and busy timeout still apply. (The
    instance is created first: Dagster's own schema set-up races when processes create one at once.)"""
    home = kept_open_home(tmp_path)
    assert dg.materialize([source], instance=dg.DagsterInstance.from_config(str(home)), partition_key="p00").success
    script = textwrap.dedent(f"""
        import sys
        import dagster as dg
        from tests.unit.test_kept_open_event_log import PARTITIONS, source
        instance = dg.DagsterInstance.from_config({str(home)!r})
        for key in PARTITIONS.get_partition_keys()[int(sys.argv[1])::4]:
            assert dg.materialize([source], instance=instance, partition_key=key).success
    """)
    writers = [subprocess.Popen([sys.executable, "-c", script, str(i)], cwd=Path(__file__).parents[2])
               for i in range(4)]
    assert [w.wait(timeout=300) for w in writers] == [0, 0, 0, 0]
    stock = SqliteEventLogStorage(str(home / "history" / "runs"))
    assert materialized(stock, LAYER) == PARTITIONS.get_partition_keys()


def test_it_keeps_at_most_max_open_databases_and_wipes(tmp_path):
    instance = dg.DagsterInstance.from_config(str(kept_open_home(tmp_path)))
    runs = [dg.materialize([source], instance=instance, partition_key=key).run_id
            for key in PARTITIONS.get_partition_keys()[:KeptOpenSqliteEventLogStorage.MAX_OPEN + 2]]
    storage = instance.event_log_storage
    assert all(storage.get_logs_for_run(run_id) for run_id in runs)
    assert len(storage._open) == KeptOpenSqliteEventLogStorage.MAX_OPEN
    storage.wipe()
    assert set(storage._open) == {"index"}, "no run's database is left open"
    assert not storage.get_logs_for_run(runs[0])
    assert materialized(storage, LAYER) == []

