"""The layer assets' code versions in the loaded code location name their extractors and models, and a
changed model setting changes the code version of exactly the layers that model makes."""

from __future__ import annotations

import pytest

from assets.layers import layer_key
from dagster_project.definitions import build_definitions
from dagster_project.jobs import INGEST_JOB
from mediasift.config import Settings
from mediasift.extraction.layers.rows import LAYERS


def code_versions(**settings: str) -> dict[str, str | None]:
    graph = build_definitions(Settings(**settings)).resolve_asset_graph()
    return {layer: graph.get(layer_key(layer)).code_version for layer in LAYERS}


def test_every_layer_names_its_extractors_and_models():
    versions = code_versions()

    assert versions["visual"] == "efficientnet-lite0@imagenet"
    assert "whisper:tiny.en" in versions["transcript"] and "all-MiniLM-L6-v2" in versions["pages"]
    assert "whisper:tiny.en" in versions["entities"], "entities are found in transcripts too"
    assert all(versions.values())


@pytest.mark.parametrize(("setting", "changed", "named"), [
    ({"clip_pretrained": "laion2b_s34b_b79k"}, {"visual"}, "clip:ViT-B-32@laion2b_s34b_b79k"),
    ({"clip_checkpoint": "/models/clip-v2.pt"}, {"visual"}, "clip:ViT-B-32@clip-v2.pt"),
    ({"whisper_model": "base.en"}, {"transcript", "entities"}, "whisper:base.en"),
])
def test_a_changed_model_is_a_new_code_version_of_the_layers_it_makes(setting, changed, named):
    before = code_versions()

    after = code_versions(**setting)

    assert {layer for layer in LAYERS if after[layer] != before[layer]} == changed
    assert all(named in after[layer] for layer in changed)


def test_the_ingest_job_runs_the_versioned_layers():
    defs = build_definitions(Settings(whisper_model="base.en"))

    job = defs.resolve_job_def(INGEST_JOB)

    assert "whisper:base.en" in job.asset_layer.get(layer_key("transcript")).code_version
