"""Content no layer takes ends `unsupported` with the reason, never `done` with nothing said: plain text
named as a video or an MP3, an unknown binary, an empty object. `objects show`, `status` and the asset
metadata all say it."""

import json

import dagster as dg
import pytest
from typer.testing import CliRunner

from assets.source import SOURCE
from mediasift.cli import app
from mediasift.inbox import State
from mediasift.store.s3 import ObjectStore
from tests.helpers import pipeline_resources, run, tick, wait_for_events

CASES = {
    "clips/bad_video.mp4": (b"this is not a video at all", "content is text/plain but the key says .mp4"),
    "talks/bad_audio.mp3": (b"nor is this any audio.", "content is text/plain but the key says .mp3"),
    "data/blob.xyz": (bytes(range(256)) * 4, "unsupported: application/octet-stream"),
    "empty/nothing.jpg": (b"", "unsupported: empty object (0 bytes)"),
}


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


def test_unsupported_and_mismatched_content_ends_unsupported_with_its_reason(stack, bucket, stack_inbox, instance,
                                                                            tmp_path, monkeypatch):
    resources = pipeline_resources(stack.settings, bucket, tmp_path)
    client = ObjectStore.from_settings(stack.settings).client
    cursor = str(stack_inbox.last_seq())
    for key, (body, _) in CASES.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)
    wait_for_events(stack_inbox, bucket, len(CASES))
    reported = {}
    for request in tick(instance, resources, cursor).run_requests:
        result = run(instance, resources, request)
        (source,) = [m for m in result.asset_materializations_for_node("object_version") if m.asset_key == SOURCE]
        reported[source.metadata["key"].value] = (source.metadata["state"].value, source.metadata["reason"].value)
    assert reported == {key: ("unsupported", reason) for key, (_, reason) in CASES.items()}
    for key, (_, reason) in CASES.items():
        (version,) = stack_inbox.versions_of(bucket, key)
        assert (version.state, version.last_error, version.in_dlq) == (State.UNSUPPORTED, reason, False)

    monkeypatch.setenv("MEDIASIFT_HOME", str(stack.home))
    monkeypatch.setenv("MEDIASIFT_DERIVED_DIR", str(tmp_path / "derived"))
    shown = CliRunner().invoke(app, ["objects", "show", f"s3://{bucket}/clips/bad_video.mp4", "--json"])
    assert shown.exit_code == 0, shown.output
    (facts,) = json.loads(shown.output)
    assert (facts["state"], facts["last_error"]) == ("unsupported", CASES["clips/bad_video.mp4"][1])
    status = CliRunner().invoke(app, ["status", "--json"])
    assert json.loads(status.output)["unsupported"] >= len(CASES)
