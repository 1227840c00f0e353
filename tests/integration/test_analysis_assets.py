"""The analysis assets on a real (temporary) Dagster instance over the synthetic object table, and the
sensor that refreshes them: it waits while an ingest run is in flight and requests one refresh per change.
(Nothing else is started: the object table is written directly, as runs write it.)"""

import uuid

import dagster as dg
import polars as pl
import pytest

from assets.analysis import ANOMALY_SCORES, CLASSIFICATIONS, CLUSTERS, DUPLICATES, build_analysis_assets
from dagster_project.analysis import ANALYSIS_JOB, build_analysis_job, build_analysis_sensor
from dagster_project.jobs import INGEST_JOB
from mediasift.analysis import views
from mediasift.config import Settings
from resources import SettingsResource
from tests.unit.test_analysis_views import write_table

TAXONOMY = """
version: 1
gaps: {min_members: 2}
labels:
  - {name: cats, examples: [g0/0.jpg, g0/1.jpg]}
  - {name: dogs, examples: [g1/0.jpg, g1/1.jpg]}
  - {name: boats, examples: [harbour/boat.jpg]}
rules:
  - {name: duplicate-upload, when: {duplicate: any}}
"""
PNG = "](data:image/png;base64,"


@pytest.fixture
def settings(tmp_path) -> Settings:
    settings = Settings(home=tmp_path)
    write_table(settings.derived_path)
    return settings


def materialize(settings: Settings, taxonomy: str, instance: dg.DagsterInstance) -> dict[dg.AssetKey, dict]:
    config = {"config": {"taxonomy": taxonomy}}
    result = dg.materialize(build_analysis_assets(taxonomy=None), instance=instance,
                            resources={"settings": SettingsResource.of(settings)},
                            run_config={"ops": {"mediasift__classifications": config, "mediasift__clusters": config}})
    assert result.success
    assert [c.passed for c in result.get_asset_check_evaluations()] == [True]
    found = [e.step_materialization_data.materialization for e in result.get_asset_materialization_events()]
    return {m.asset_key: m.metadata for m in found}


def value(metadata: dict, name: str):
    return metadata[name].value


def test_the_four_assets_write_their_views_with_counts_and_plots(settings, tmp_path):
    taxonomy = tmp_path / "taxonomy.yaml"
    taxonomy.write_text(TAXONOMY)
    analysis = views.analysis_dir(settings.derived_path)

    with dg.instance_for_test() as instance:
        first = materialize(settings, str(taxonomy), instance)
        again = materialize(settings, str(taxonomy), instance)

    assert set(first) == {DUPLICATES, CLUSTERS, ANOMALY_SCORES, CLASSIFICATIONS}
    duplicates = first[DUPLICATES]
    assert [value(duplicates, name) for name in ("groups", "exact_groups", "near_groups")] == [3, 1, 2]
    assert value(duplicates, "differing_from_arrival") == 0 and value(duplicates, "near_cosine") == 0.93
    clusters = first[CLUSTERS]
    assert value(clusters, "visual_clusters") == 3 and value(clusters, "visual_noise") == 1
    assert value(clusters, "visual_plots").count(PNG) == 2
    assert value(again[CLUSTERS], "visual_ids_kept") == 3
    assert value(clusters, "visual_gaps") >= 1
    scores = first[ANOMALY_SCORES]
    assert value(scores, "visual_scored") == 39 and value(scores, "threshold") == 0.99
    assert PNG in value(scores, "visual_scores")
    assert value(again[ANOMALY_SCORES], "visual_history_rows") == 2 * 39
    labels = first[CLASSIFICATIONS]
    assert value(labels, "objects") == 42 and value(labels, "flags") == 3
    assert value(labels, "labels_changed") and not value(again[CLASSIFICATIONS], "labels_changed")
    assert not value(again[CLASSIFICATIONS], "flags_changed")
    for name in ("duplicates.parquet", "clusters_visual.parquet", "anomaly_history.parquet",
                 "anomaly_reference_visual.parquet", "classifications.parquet", "flags.parquet"):
        assert len(pl.read_parquet(analysis / name)) > 0
    named = {c.label for c in views.read_clusters(analysis, "visual").clusters}
    assert {"cats", "dogs"} <= named
    assert views.load_reference(analysis, "visual") is not None


def test_without_a_taxonomy_classifications_wait_for_one(settings):
    with dg.instance_for_test() as instance:
        result = dg.materialize(build_analysis_assets(taxonomy=None), instance=instance,
                                selection=[CLASSIFICATIONS], resources={"settings": SettingsResource.of(settings)})

    metadata = result.asset_materializations_for_node("mediasift__classifications")[0].metadata
    assert "MEDIASIFT_TAXONOMY" in metadata["taxonomy"].value


def tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None):
    with dg.build_sensor_context(instance=instance, cursor=cursor) as context:
        return sensor(context)


def add_run(instance: dg.DagsterInstance, job: str, status: dg.DagsterRunStatus) -> dg.DagsterRun:
    return instance.add_run(dg.DagsterRun(job_name=job, run_id=str(uuid.uuid4()), status=status))


def test_the_sensor_waits_for_ingest_runs_and_requests_one_refresh_per_change(settings):
    sensor = build_analysis_sensor(build_analysis_job(), settings)
    with dg.instance_for_test() as instance:
        ingesting = add_run(instance, INGEST_JOB, dg.DagsterRunStatus.STARTED)
        waiting = tick(sensor, instance, None)
        instance.delete_run(ingesting.run_id)
        requested = tick(sensor, instance, None)
        unchanged = tick(sensor, instance, requested.cursor)
        write_table(settings.derived_path, seed=3)
        add_run(instance, ANALYSIS_JOB, dg.DagsterRunStatus.STARTED)
        busy = tick(sensor, instance, requested.cursor)

    assert not waiting.run_requests and "ingest runs in flight" in waiting.skip_reason.skip_message
    assert len(requested.run_requests) == 1 and requested.cursor
    assert not unchanged.run_requests and "unchanged" in unchanged.skip_reason.skip_message
    assert not busy.run_requests and "analysis run" in busy.skip_reason.skip_message


def test_the_sensor_requests_a_refresh_when_the_table_changed_and_nothing_is_in_flight(settings, tmp_path):
    sensor = build_analysis_sensor(build_analysis_job(), settings)
    empty = build_analysis_sensor(build_analysis_job(), Settings(home=tmp_path / "empty"))
    with dg.instance_for_test() as instance:
        add_run(instance, INGEST_JOB, dg.DagsterRunStatus.SUCCESS)
        first = tick(sensor, instance, None)
        write_table(settings.derived_path, seed=4)
        second = tick(sensor, instance, first.cursor)
        nothing = tick(empty, instance, None)

    assert [r.run_key for r in first.run_requests] == [f"objects:{first.cursor}"]
    assert len(second.run_requests) == 1 and second.cursor != first.cursor
    assert not nothing.run_requests and "empty" in nothing.skip_reason.skip_message
