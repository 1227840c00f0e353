"""Verdicts at arrival, in each object's own run on the real pipeline (SeaweedFS, Dagster in-process, the
trained visual model): an identical copy under another key is an exact duplicate, a recompressed copy a
near one, a different photo neither; once the anomaly reference exists, noise is flagged as it arrives
while a copy of a known photo is not, and a score never moves when later objects arrive."""

import json

import dagster as dg
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from mediasift.analysis import views
from mediasift.cli import app
from mediasift.local.samples import photo, photo_variants
from mediasift.store.s3 import ObjectStore
from tests.helpers import jpeg, pipeline_resources, png, run, tick, wait_for_events

SUBJECTS = ["chelsea", "coffee", "rocket"]


@pytest.fixture
def pipeline(stack, bucket, stack_inbox, tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    resources = pipeline_resources(stack.settings, bucket, tmp_path)
    client = ObjectStore.from_settings(stack.settings).client
    state = {"cursor": str(stack_inbox.last_seq()), "events": 0}

    def ingest(objects: dict[str, bytes]) -> None:
        for key, body in objects.items():
            client.put_object(Bucket=bucket, Key=key, Body=body)
        state["events"] += len(objects)
        wait_for_events(stack_inbox, bucket, state["events"])
        result = tick(instance, resources, state["cursor"])
        state["cursor"] = result.cursor
        for request in result.run_requests:
            assert run(instance, resources, request).success

    return ingest


def show(stack, bucket, key, tmp_path, monkeypatch) -> dict:
    monkeypatch.setenv("MEDIASIFT_HOME", str(stack.home))
    monkeypatch.setenv("MEDIASIFT_DERIVED_DIR", str(tmp_path / "derived"))
    shown = CliRunner().invoke(app, ["objects", "show", f"s3://{bucket}/{key}", "--json"])
    assert shown.exit_code == 0, shown.output
    return json.loads(shown.output)[-1]["analysis"]


def test_duplicates_and_anomalies_are_judged_at_arrival_and_kept(stack, bucket, pipeline, tmp_path, monkeypatch):
    pipeline({f"ref/{name}/{i}.png": png(image)
              for name in SUBJECTS for i, image in enumerate(photo_variants(photo(name)))})
    pipeline({"copies/cat again.png": png(photo("chelsea")), "copies/cat q60.jpg": jpeg(photo("chelsea"), 60)})
    exact = show(stack, bucket, "copies/cat again.png", tmp_path, monkeypatch)
    near = show(stack, bucket, "copies/cat q60.jpg", tmp_path, monkeypatch)
    assert (exact["duplicate_of"]["key"], exact["duplicate_reason"]) == ("ref/chelsea/0.png", "sha256")
    assert near["duplicate_of"]["key"] == "ref/chelsea/0.png", "the group's representative: the first to arrive"
    assert near["duplicate_reason"].startswith(("cosine:", "phash:"))
    assert show(stack, bucket, "ref/coffee/0.png", tmp_path, monkeypatch)["duplicate_of"] is None
    assert exact["anomaly_score"] is None, "no reference yet: no score"

    analysis = views.analysis_dir(tmp_path / "derived")
    rescored = views.rescore_view(views.load_objects(tmp_path / "derived"), "visual")
    assert views.write_reference(analysis, rescored) is not None
    noise = Image.fromarray(np.random.default_rng(3).integers(0, 256, (400, 600, 3), dtype=np.uint8))
    pipeline({"odd/noise.png": png(noise), "copies/coffee q70.jpg": jpeg(photo("coffee"), 70)})
    odd = show(stack, bucket, "odd/noise.png", tmp_path, monkeypatch)
    normal = show(stack, bucket, "copies/coffee q70.jpg", tmp_path, monkeypatch)
    print(f"anomaly at arrival: noise {odd['anomaly_score']:.3f}, recompressed coffee {normal['anomaly_score']:.3f}")
    assert odd["anomaly_flagged"] and not normal["anomaly_flagged"]

    pipeline({"later/rocket copy.png": png(photo("rocket").rotate(90, expand=True))})
    assert show(stack, bucket, "odd/noise.png", tmp_path, monkeypatch) == odd, "a verdict does not move later"
