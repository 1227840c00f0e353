"""The code location loads and its graph is what the UI should show; its policy follows the settings."""

import dagster as dg
import yaml
from dagster._daemon.sensor import MIN_INTERVAL_LOOP_TIME

from dagster_project.definitions import build_definitions, defs
from dagster_project.instance import INSTANCE_YAML, partition_limit_missing
from mediasift.config import SECRET_FIELDS, Settings

SOURCE = dg.AssetKey(["mediasift", "source_object"])
LAYERS = ("transcript", "scenes", "visual", "pages", "entities")
CHECKS = {"rows_have_lineage", "vector_dimensions", "no_rows_for_removed_versions"}
BLOCKING = {"rows_have_lineage", "vector_dimensions"}


def test_code_location_loads_with_the_expected_graph():
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    analysis = ("duplicates", "clusters", "anomaly_scores", "classifications")
    assert {key.to_user_string() for key in graph.get_all_asset_keys()} == {
        "mediasift/source_object", "mediasift/replayed_version",
        *(f"mediasift/{name}" for name in (*LAYERS, *analysis))}
    assert {job.name for job in repo.get_all_jobs()} >= {"ingest_object_version", "reconcile_job", "analysis_job"}
    for name in analysis:
        node = graph.get(dg.AssetKey(["mediasift", name]))
        assert node.group_name == "analysis" and node.partitions_def is None
        assert SOURCE in node.parent_keys, "downstream of the object partitions"
    assert graph.get(SOURCE).group_name == "source"
    for layer in LAYERS:
        node = graph.get(dg.AssetKey(["mediasift", layer]))
        assert node.group_name == "layers"
        assert node.partitions_def.name == "object_versions"
        assert SOURCE in node.parent_keys
        assert {c.name for c in graph.get_check_keys_for_assets([node.key])} == CHECKS
        checks = defs.resolve_assets_def(node.key).check_specs
        specs = {spec.name: spec for spec in checks if spec.asset_key == node.key}
        assert {name for name, spec in specs.items() if spec.blocking} == BLOCKING, "what the gate judges blocks"
        assert all(spec.partitions_def.name == "object_versions" for spec in specs.values()), "judged per version"


def test_source_object_is_partitioned_by_object_version_and_extracts_in_the_pool():
    source = defs.resolve_assets_def(SOURCE)
    assert isinstance(source.partitions_def, dg.DynamicPartitionsDefinition)
    assert source.partitions_def.name == "object_versions"
    assert "If-Match" in source.descriptions_by_key[SOURCE]
    assert source.op.pool == "mediasift_extraction"


def test_sensor_and_reconcile_schedule_run_by_default():
    sensor = defs.resolve_sensor_def("inbox_sensor")
    assert sensor.default_status is dg.DefaultSensorStatus.RUNNING
    interval = sensor.minimum_interval_seconds
    assert interval < MIN_INTERVAL_LOOP_TIME, "a minimum of the daemon's loop or more skips every other check"
    assert sensor.job_name == "ingest_object_version"
    schedule = defs.resolve_schedule_def("reconcile_schedule")
    assert schedule.default_status is dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "reconcile_job"


def test_secrets_are_environment_variables_not_config():
    s3 = defs.resources["s3"]
    assert isinstance(s3.aws_secret_access_key, dg.EnvVar)
    assert isinstance(s3.aws_access_key_id, dg.EnvVar)
    shown = defs.resources["settings"].values
    assert not {"s3_access_key", "s3_secret_key", "webhook_token", "webhook_basic_password"} & set(shown)


def test_retries_follow_max_attempts():
    for max_attempts in (5, 1):
        built = build_definitions(Settings(max_attempts=max_attempts))
        assert built.resolve_assets_def(SOURCE).op.retry_policy.max_retries == max_attempts - 1
        assert built.resources["settings"].values["max_attempts"] == max_attempts


def test_every_setting_reaches_the_resources_and_back():
    settings = Settings(clip_model="ViT-B-16", ray="10.0.0.1:6379", sensor_batch_size=7, whisper_model="base.en")
    shown = build_definitions(settings).resources["settings"]
    expected = settings.model_dump(mode="json", exclude=set(SECRET_FIELDS), exclude_none=True)
    assert shown.values == expected
    assert shown.get().model_dump(exclude=set(SECRET_FIELDS)) == settings.model_dump(exclude=set(SECRET_FIELDS))


def test_the_shipped_instance_yaml_holds_one_run_per_object_version():
    with dg.instance_for_test(overrides=yaml.safe_load(INSTANCE_YAML.read_text())) as instance:
        assert partition_limit_missing(instance) is None


def test_an_instance_without_the_partition_limit_is_named():
    with dg.instance_for_test() as instance:
        assert "dagster.yaml" in partition_limit_missing(instance)
    config = yaml.safe_load(INSTANCE_YAML.read_text())
    config["run_coordinator"]["config"]["tag_concurrency_limits"] = []
    with dg.instance_for_test(overrides=config) as instance:
        assert "one-run-per-partition" in partition_limit_missing(instance)


def test_batch_mode_partitions_the_ingest_assets_by_batch_and_keeps_replays_per_version():
    built = build_definitions(Settings(partition_mode="batch", run_batch_size=500))
    graph = built.get_repository_def().asset_graph
    for key in (SOURCE, *(dg.AssetKey(["mediasift", layer]) for layer in LAYERS)):
        assert graph.get(key).partitions_def.name == "object_batches"
    layer_checks = built.resolve_assets_def(SOURCE).check_specs
    assert {spec.partitions_def.name for spec in layer_checks} == {"object_batches"}
    assert graph.get(dg.AssetKey(["mediasift", "replayed_version"])).partitions_def.name == "object_versions"
    assert built.resolve_assets_def(SOURCE).backfill_policy.max_partitions_per_run == 1, "a batch is a run already"


def test_the_retention_sensor_runs_by_default():
    sensor = defs.resolve_sensor_def("partition_retention_sensor")
    assert sensor.default_status is dg.DefaultSensorStatus.RUNNING
