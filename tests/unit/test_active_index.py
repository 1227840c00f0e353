"""`mediasift index use|show` and the choice every search path reads: which namespaces are refused and why,
and what search does when the namespace in use disappears. Namespaces here are records only (no replay);
tests/integration/test_index_use.py cuts a real search over and back."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from mediasift.cli import app
from mediasift.config import Settings
from mediasift.query.active_index import active_lance_location, index_file
from mediasift.snapshots.namespace import Namespace, NamespaceRecord


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Settings:
    monkeypatch.setenv("MEDIASIFT_HOME", str(tmp_path))
    return Settings(home=tmp_path)


def namespace(settings: Settings, name: str, finished: bool = True, **states: int) -> Namespace:
    space = Namespace.of(settings, name)
    space.write(NamespaceRecord(name, "media", "before", "2025-01-01T00:00:00+00:00",
                                finished_at="2025-01-01T00:01:00+00:00" if finished else None,
                                versions=3, states=states))
    return space


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def said(result) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def test_search_reads_the_live_index_until_a_namespace_is_chosen(settings):
    shown = invoke("index", "show", "--json")

    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["active"] == {"name": "live", "lance_uri": settings.lance_location,
                                                  "chosen_at": None, "snapshot": None}
    assert active_lance_location(settings) == settings.lance_location


def test_a_finished_namespace_is_used_and_live_rolls_back(settings):
    space = namespace(settings, "retrain", done=2, unsupported=1)

    used = invoke("index", "use", "retrain", "--json")
    in_use = active_lance_location(settings)
    shown = json.loads(invoke("index", "show", "--json").stdout)
    back = invoke("index", "use", "live")

    assert used.exit_code == 0, used.output
    assert json.loads(used.stdout)["name"] == "retrain" and in_use == space.lance_uri
    assert shown["active"]["snapshot"] == "before"
    assert [(n["name"], n["ready"], n["active"]) for n in shown["namespaces"]] == [("retrain", True, True)]
    assert back.exit_code == 0 and "live index" in said(back)
    assert active_lance_location(settings) == settings.lance_location


@pytest.mark.parametrize(("finished", "states", "problem"), [
    (False, {}, "has not finished"),
    (True, {"done": 2, "failed": 1}, "2 of its 3 versions are in place (2 done, 1 failed)"),
])
def test_a_namespace_whose_replay_is_unfinished_is_refused(settings, finished, states, problem):
    namespace(settings, "half", finished, **states)

    refused = invoke("index", "use", "half")
    listed = json.loads(invoke("index", "show", "--json").stdout)["namespaces"]

    assert refused.exit_code == 1
    assert problem in said(refused) and "mediasift replay --snapshot before --into half" in said(refused)
    assert not index_file(settings).exists(), "a refused choice leaves search where it was"
    assert listed[0]["ready"] is False and problem in listed[0]["problem"]


def test_unknown_namespaces_and_bad_names_are_clear_errors(settings):
    unknown = invoke("index", "use", "nowhere")
    bad = invoke("index", "use", "../live")

    assert unknown.exit_code == 1 and "no namespace 'nowhere'" in said(unknown)
    assert bad.exit_code == 1 and "letters, digits" in said(bad)


def test_search_refuses_a_namespace_removed_while_in_use(settings):
    space = namespace(settings, "retrain", done=3)
    assert invoke("index", "use", "retrain").exit_code == 0
    shutil.rmtree(space.folder)

    searched = invoke("search", "anything")
    shown = invoke("index", "show")

    for result in (searched, shown):
        assert result.exit_code == 1 and "which is gone" in said(result) and "index use live" in said(result)
    assert invoke("index", "use", "live").exit_code == 0
