"""The storages the stack configures: Dagster's SQLite files and schema, the event log's databases kept
open, the run and schedule schemas checked once per process and their engines kept, compute logs written
without mirror processes. Other processes, and Dagster's stock storage, must read and write the same files
as before."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import psutil
import yaml
from dagster._core.storage.compute_log_manager import ComputeIOType
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from dagster_project import storage as tuned
from dagster_project.storage import (
    CheckedOnceSqliteRunStorage,
    CheckedOnceSqliteScheduleStorage,
    FileComputeLogManager,
    KeptOpenSqliteEventLogStorage,
)
from mediasift.local.stack import tuned_sqlite_storage

PARTITIONS = dg.StaticPartitionsDefinition([f"p{i:02d}" for i in range(24)])
LAYER = dg.AssetKey("layer")


@dg.asset(partitions_def=PARTITIONS)
def source(context: dg.AssetExecutionContext) -> None:
    for key in context.partition_keys:
        context.log_event(dg.AssetMaterialization(LAYER, partition=key))


def kept_open_home(home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump({**tuned_sqlite_storage(home), "telemetry": {"enabled": False}}))
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

def test_schemas_are_checked_once_per_process_and_stock_storage_reads_them(tmp_path, monkeypatch):
    """The code server makes a fresh instance for every sensor tick: its storages must not parse Dagster's
    migrations again each time (run, schedule, and each event-log database)."""
    import dagster._core.storage.event_log.sqlite.sqlite_event_log as events
    import dagster._core.storage.runs.sqlite.sqlite_run_storage as runs
    import dagster._core.storage.schedules.sqlite.sqlite_schedule_storage as schedules

    checks = []

    def counted(check):
        return lambda config, connection: checks.append(1) or check(config, connection)

    for module in (runs, schedules, events):
        monkeypatch.setattr(module, "check_alembic_revision", counted(module.check_alembic_revision))
    home = kept_open_home(tmp_path)
    instance = dg.DagsterInstance.from_config(str(home))
    assert isinstance(instance.run_storage, CheckedOnceSqliteRunStorage)
    assert isinstance(instance.schedule_storage, CheckedOnceSqliteScheduleStorage)
    result = dg.materialize([source], instance=instance, partition_key="p01")
    first = len(checks)
    assert first >= 4, "a fresh run, schedule, index and run database are each checked (and created)"
    for _ in range(3):
        again = dg.DagsterInstance.from_ref(instance.get_ref())
        assert again.get_run_by_id(result.run_id).is_success
        assert len(again.all_logs(result.run_id)) == len(instance.all_logs(result.run_id))
        assert materialized(again.event_log_storage, LAYER) == ["p01"]
        again.dispose()
    assert len(checks) == first, "later instances of this process do not parse Dagster's migrations again"
    assert runs.SqliteRunStorage.from_local(str(home / "history")).has_run(result.run_id)
    assert schedules.SqliteScheduleStorage.from_local(str(home / "schedules")).all_instigator_state() == []


def test_run_and_schedule_engines_are_kept_per_database_and_not_shared_with_a_fork(tmp_path):
    home = kept_open_home(tmp_path)
    instance = dg.DagsterInstance.from_config(str(home))
    run_id = dg.materialize([source], instance=instance, partition_key="p02").run_id
    engines = {url: tuned._ENGINES[url] for url in (instance.run_storage._conn_string,
                                                    instance.schedule_storage._conn_string)}
    again = dg.DagsterInstance.from_ref(instance.get_ref())
    assert again.run_storage is not instance.run_storage
    assert again.get_run_by_id(run_id).is_success
    again.schedule_storage.all_instigator_state()
    assert {url: tuned._ENGINES[url] for url in engines} == engines, "a new storage object reuses the engine"
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read)
        os.write(write, b"%d" % len(tuned._ENGINES))
        os._exit(0)
    os.close(write)
    assert os.read(read, 16) == b"0", "a forked child (a run worker) opens its own connections"
    os.waitpid(child, 0)
    assert runs_of(home) == [run_id], "Dagster's stock run storage reads what the kept engine wrote"


def runs_of(home: Path) -> list[str]:
    import dagster._core.storage.runs.sqlite.sqlite_run_storage as runs

    return [run.run_id for run in runs.SqliteRunStorage.from_local(str(home / "history")).get_runs()]


@dg.asset
def chatty() -> list[int]:
    print("to stdout")
    print("to stderr", file=sys.stderr)
    return [child.pid for child in psutil.Process().children(recursive=True)]


def test_compute_logs_go_to_their_files_with_no_mirror_processes(tmp_path):
    instance = dg.DagsterInstance.from_config(str(kept_open_home(tmp_path)))
    assert isinstance(instance.compute_log_manager, FileComputeLogManager)
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    result = dg.materialize([chatty], instance=instance)
    started = set(result.output_for_node("chatty")) - before
    assert started == set(), "no tail or watcher process ran beside the step (earlier tests' servers aside)"
    [captured] = [e.dagster_event.logs_captured_data for e in instance.all_logs(result.run_id)
                  if e.dagster_event and e.dagster_event.event_type_value == "LOGS_CAPTURED"]
    manager = instance.compute_log_manager
    log_key = manager.build_log_key_for_run(result.run_id, captured.file_key)
    assert manager.is_capture_complete(log_key)
    data = manager.get_log_data(log_key)
    assert b"to stdout" in data.stdout and b"to stderr" in data.stderr
    assert manager.get_log_data_for_type(log_key, ComputeIOType.STDERR, 0, None)[0].count(b"to stderr") == 1
