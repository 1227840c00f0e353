"""`mediasift duplicates|clusters|anomalies|flags|classify` over the synthetic object table: DESIGN §10's
JSON key for key, tables that say where their view came from, and an empty table that is not an error."""

import json

import pytest
from typer.testing import CliRunner

from mediasift.analysis import views
from mediasift.cli import app
from mediasift.config import Settings
from tests.unit.test_analysis_views import REF_KEYS, write_table

TAXONOMY = """
version: 1
labels:
  - {name: cats, examples: [g0/0.jpg, g0/1.jpg]}
  - {name: dogs, examples: [g1/0.jpg, g1/1.jpg]}
rules:
  - {name: duplicate-upload, when: {duplicate: any}}
"""


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIASIFT_HOME", str(tmp_path))
    monkeypatch.delenv("MEDIASIFT_TAXONOMY", raising=False)
    return tmp_path


@pytest.fixture
def table(home):
    derived = Settings(home=home).derived_path
    _, truth = write_table(derived)
    (home / "taxonomy.yaml").write_text(TAXONOMY)
    return derived, truth


def invoke(*args: str) -> tuple[int, dict | str]:
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout) if "--json" in args else result.output


def test_duplicates_json_has_the_groups_with_their_members_reasons(table):
    _, truth = table

    code, report = invoke("duplicates", "--json")

    assert code == 0 and set(report) == {"groups"}
    assert [(g["kind"], g["representative"]["key"]) for g in report["groups"]] == [
        ("exact", truth.exact[0]), ("near", truth.near[0]), ("near", truth.words[0])]
    for g in report["groups"]:
        assert set(g) == {"kind", "representative", "members"} and set(g["representative"]) == REF_KEYS
        assert [set(m) for m in g["members"]] == [REF_KEYS | {"reason"}] * 2


def test_the_table_says_whether_it_shows_the_assets_output_or_computed_it(table):
    derived, truth = table
    _, computed = invoke("duplicates")
    views.write_duplicates(views.analysis_dir(derived), views.duplicate_view(views.load_objects(derived)).groups)

    code, stored = invoke("duplicates")

    assert "computed now from the object table" in computed and truth.exact[1] in computed
    assert code == 0 and "from analysis/duplicates.parquet, written" in stored and truth.exact[1] in stored


def test_clusters_json_per_space(table):
    code, visual = invoke("clusters", "--json")
    _, text = invoke("clusters", "--space", "text", "--json")

    assert code == 0 and set(visual) == {"space", "clusters", "noise", "gaps"} and visual["space"] == "visual"
    assert [c["size"] for c in visual["clusters"]] == [13, 13, 12]
    assert all(set(c) == {"id", "size", "label", "keywords", "representatives", "members"}
               for c in visual["clusters"])
    assert [set(n) for n in visual["noise"]] == [REF_KEYS]
    assert text["space"] == "text" and text["clusters"] == [] and len(text["noise"]) == 3
    assert CliRunner().invoke(app, ["clusters", "--space", "audio"]).exit_code == 2


def test_clusters_with_a_taxonomy_name_their_clusters_and_report_gaps(table, home):
    code, report = invoke("clusters", "--taxonomy", str(home / "taxonomy.yaml"), "--json")

    assert code == 0
    assert sorted(c["label"] or "-" for c in report["clusters"]) == ["-", "cats", "dogs"]
    assert [g["kind"] for g in report["gaps"]] == ["unlabelled_cluster"]


def test_anomalies_are_highest_first_flagged_over_the_threshold(table):
    _, truth = table

    _, flagged = invoke("anomalies", "--json")
    _, lower = invoke("anomalies", "--threshold", "0.95", "--json")
    code, everything = invoke("anomalies", "--all", "--json")

    assert code == 0 and flagged == {"threshold": 0.99, "objects": []}
    assert [o["key"] for o in lower["objects"]] == [truth.outlier] and lower["threshold"] == 0.95
    assert len(everything["objects"]) == 39 and everything["objects"][0]["key"] == truth.outlier
    scores = [o["score"] for o in everything["objects"]]
    assert scores == sorted(scores, reverse=True)
    assert all(set(o) == REF_KEYS | {"score", "flagged", "scored_at"} for o in everything["objects"])


def test_flags_from_the_taxonomy_rules_and_none_without_rules(table, home, monkeypatch):
    _, truth = table
    code, none = invoke("flags", "--json")
    monkeypatch.setenv("MEDIASIFT_TAXONOMY", str(home / "taxonomy.yaml"))

    _, report = invoke("flags", "--json")

    assert code == 0 and none == {"flags": []}
    assert sorted(f["key"] for f in report["flags"]) == sorted([truth.exact[1], truth.near[1], truth.words[1]])
    assert all(set(f) == REF_KEYS | {"rule", "reason", "at"} for f in report["flags"])


def test_classify_labels_every_object(table, home):
    code, report = invoke("classify", "--taxonomy", str(home / "taxonomy.yaml"), "--json")

    assert code == 0 and set(report) == {"objects"} and len(report["objects"]) == 42
    labels = {o["key"]: [s["label"] for s in o["labels"]] for o in report["objects"]}
    assert labels["g0/5.jpg"] == ["cats"] and labels["g1/5.jpg"] == ["dogs"] and labels["g2/5.jpg"] == ["unassigned"]
    assert all(set(o) == REF_KEYS | {"labels"} for o in report["objects"])
    assert all(set(s) == {"label", "score"} for o in report["objects"] for s in o["labels"])


def test_a_missing_taxonomy_file_is_a_clear_error(table, home):
    result = CliRunner().invoke(app, ["classify", "--taxonomy", str(home / "missing.yaml")])

    assert result.exit_code != 0
    assert "cannot read the taxonomy file" in str(result.exception)


@pytest.mark.parametrize(("args", "empty"), [
    (["duplicates"], {"groups": []}),
    (["clusters"], {"space": "visual", "clusters": [], "noise": [], "gaps": []}),
    (["anomalies", "--all"], {"threshold": 0.99, "objects": []}),
    (["flags"], {"flags": []}),
])
def test_an_empty_table_says_so_and_gives_empty_lists(home, args, empty):
    code, said = invoke(*args)
    json_code, report = invoke(*args, "--json")

    assert code == json_code == 0
    assert "the object table is empty" in said
    assert report == empty


def test_classify_on_an_empty_table_gives_no_objects(home):
    (home / "taxonomy.yaml").write_text(TAXONOMY)

    code, report = invoke("classify", "--taxonomy", str(home / "taxonomy.yaml"), "--json")

    assert code == 0 and report == {"objects": []}
