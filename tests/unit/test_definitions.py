"""The code location loads and its graph is what the UI should show."""

import dagster as dg

from dagster_project.definitions import defs


def test_code_location_loads_with_the_expected_graph():
    repo = defs.get_repository_def()
    assert {key.to_user_string() for key in repo.asset_graph.get_all_asset_keys()} == {
        "mediasift/source_object", "mediasift/transcript", "mediasift/scenes", "mediasift/visual", "mediasift/pages",
        "mediasift/entities"}
    assert {job.name for job in repo.get_all_jobs()} >= {"ingest_object_version", "reconcile_job"}


def test_source_object_is_partitioned_by_object_version():
    source = defs.resolve_assets_def(dg.AssetKey(["mediasift", "source_object"]))
    assert isinstance(source.partitions_def, dg.DynamicPartitionsDefinition)
    assert source.partitions_def.name == "object_versions"
    assert source.group_names_by_key[dg.AssetKey(["mediasift", "source_object"])] == "source"
    assert "If-Match" in source.descriptions_by_key[dg.AssetKey(["mediasift", "source_object"])]


def test_sensor_and_reconcile_schedule_run_by_default():
    sensor = defs.resolve_sensor_def("inbox_sensor")
    assert sensor.default_status is dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds <= 5
    schedule = defs.resolve_schedule_def("reconcile_schedule")
    assert schedule.default_status is dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "reconcile_job"


def test_secrets_are_environment_variables_not_config():
    s3 = defs.resources["s3"]
    assert isinstance(s3.secret_access_key, dg.EnvVar)
    assert isinstance(s3.access_key_id, dg.EnvVar)


def test_every_layer_is_partitioned_downstream_of_the_source_with_checks():
    repo = defs.get_repository_def()
    source = dg.AssetKey(["mediasift", "source_object"])
    for layer in ("transcript", "scenes", "visual", "pages", "entities"):
        key = dg.AssetKey(["mediasift", layer])
        node = repo.asset_graph.get(key)
        assert node.partitions_def.name == "object_versions"
        assert source in node.parent_keys
        checks = {c.name for c in repo.asset_graph.get_check_keys_for_assets([key])}
        assert checks == {"rows_have_lineage", "vector_dimensions", "no_rows_for_removed_versions"}
