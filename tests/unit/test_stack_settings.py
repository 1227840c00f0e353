"""What the embedded stack hands Dagster differs between a run per event and batch runs on Ray."""

from pydantic import SecretStr

from mediasift.config import Settings
from mediasift.local.stack import PLANNED_SUBSET_ENV, Stack


def settings(tmp_path, **overrides) -> Settings:
    return Settings(home=tmp_path, s3_access_key=SecretStr("a"), s3_secret_key=SecretStr("s"), **overrides)


def test_batch_runs_on_ray_overlap_and_plan_one_event_per_asset(tmp_path):
    batch = settings(tmp_path, ray="127.0.0.1:6379", run_batch_size=100)
    assert batch.concurrent_runs == 6
    env = Stack(batch).child_env()
    assert env[PLANNED_SUBSET_ENV] == "true"
    assert env["MEDIASIFT_RUN_BATCH_SIZE"] == "100"


def test_a_run_per_event_keeps_two_runs_and_dagsters_per_partition_events(tmp_path):
    for per_event in (settings(tmp_path), settings(tmp_path, ray="local")):
        assert per_event.concurrent_runs == 2
        assert PLANNED_SUBSET_ENV not in Stack(per_event).child_env()
    assert settings(tmp_path, ray="local", run_batch_size=50, max_concurrent_runs=3).concurrent_runs == 3


def test_dagster_processes_get_every_setting_of_the_stack(tmp_path, monkeypatch):
    chosen = settings(tmp_path, whisper_model="base.en", clip_checkpoint="/models/clip.pt", max_attempts=5,
                      ray="local", reconcile_cron="*/5 * * * *")
    env = Stack(chosen).child_env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    seen = Settings()
    assert seen.model_dump(exclude={"home", "database_url"}) == Stack(chosen).settings.model_dump(
        exclude={"home", "database_url"})
    assert seen.inbox_url == chosen.inbox_url and seen.home == tmp_path.resolve()
