"""`mediasift search` asks the running stack's receiver, whose models are warm, and loads its own models
only when no stack answers."""

import json
import os

import pytest
from typer.testing import CliRunner

from mediasift.cli import app
from mediasift.cli import search as search_command
from mediasift.config import STACK_FILE, Settings
from mediasift.extraction.layers.rows import Row
from mediasift.extraction.models import models_for
from mediasift.identity import ObjectVersion
from mediasift.intake.receiver import ReceiverServer, create_app
from mediasift.local.processes import LOOPBACK, free_port
from mediasift.store.lance import LanceIndex
from mediasift.store.records import to_arrow

TALK = ObjectVersion("media", "talks/harbour tour.mp3", '"A1"')
SAID = "the ferry leaves the harbour at nine"


@pytest.fixture
def indexed_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIASIFT_HOME", str(tmp_path))
    settings = Settings(home=tmp_path)
    rows = [Row("transcript", "audio", "sentence", SAID, t_start=3.0, t_end=5.5)]
    rows[0].vector = models_for(settings).text.embed([SAID])[0]
    LanceIndex(settings.lance_location).replace_versions("transcript", [TALK.version_hash],
                                                          [to_arrow(rows, TALK, "whisper@test")])
    return settings


def search_json(*args: str) -> list[dict]:
    result = CliRunner().invoke(app, ["search", "ferry departure", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_search_uses_the_stack_receiver_and_falls_back_to_local_models(indexed_home, monkeypatch):
    loads = []
    monkeypatch.setattr(search_command, "models_for", lambda s: loads.append(s) or models_for(s))
    server = ReceiverServer(create_app(indexed_home), LOOPBACK, free_port()).start()
    try:
        (indexed_home.home / STACK_FILE).write_text(json.dumps(
            {"state": "ready", "pid": os.getpid(), "receiver_url": server.url}))
        warm = search_json("--layer", "transcript")
        grouped = search_json("--layer", "transcript", "--group")
    finally:
        server.stop()
    assert loads == []
    assert [(h["key"], h["t_start"], h["t_end"]) for h in warm] == [(TALK.key, 3.0, 5.5)]
    assert grouped[0]["key"] == TALK.key and grouped[0]["hits"][0]["text"] == SAID
    cold = search_json("--layer", "transcript")
    assert len(loads) == 1
    assert cold == warm
