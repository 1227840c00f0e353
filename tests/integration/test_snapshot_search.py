"""`mediasift search --as-of`: PDFs ingested through the real event path (SeaweedFS with versioning on, its
webhook, the receiver, the sensor and asset in-process, real models and LanceDB), a snapshot, then an
overwrite, a delete and a new object. The snapshot's search answers as the index stood; plain search
answers as it stands now."""

from __future__ import annotations

import json
import uuid

import dagster as dg
from typer.testing import CliRunner

from mediasift.cli import app
from mediasift.snapshots import Snapshots
from mediasift.store.s3 import ObjectStore
from tests.helpers import pdf_bytes, pipeline_resources, pipeline_settings, run_new_events, wait_for_events


def search(query: str, *args: str) -> list[tuple[str, str]]:
    result = CliRunner().invoke(app, ["search", query, "--layer", "pages", "--json", "-k", "5", *args])
    assert result.exit_code == 0, result.output
    return [(hit["key"], hit["etag"]) for hit in json.loads(result.stdout)]


def test_search_as_of_a_snapshot_returns_the_snapshot_time_hits_and_plain_search_the_new_ones(
        stack, stack_inbox, tmp_path, monkeypatch):
    bucket = f"t-{uuid.uuid4().hex[:10]}"
    s3 = ObjectStore.from_settings(stack.settings)
    s3.ensure_bucket(bucket)
    s3.client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    resources = pipeline_resources(stack.settings, bucket, tmp_path)
    cursor, events = str(stack_inbox.last_seq()), 0

    def step() -> None:
        nonlocal cursor
        wait_for_events(stack_inbox, bucket, events)
        cursor, _ = run_new_events(instance, resources, stack_inbox, cursor)

    with dg.instance_for_test() as instance:
        memo = s3.client.put_object(Bucket=bucket, Key="memo.pdf", Body=pdf_bytes("The zebra crossing was repainted."))
        budget = s3.client.put_object(Bucket=bucket, Key="budget.pdf", Body=pdf_bytes("Project Nightingale budget."))
        events += 2  # the delete marker of a versioned SeaweedFS bucket reaches the inbox by no event
        step()
        Snapshots(pipeline_settings(stack.settings, bucket, tmp_path)).create("before")

        new_memo = s3.client.put_object(Bucket=bucket, Key="memo.pdf",
                                        Body=pdf_bytes("A zebra escaped from the zoo overnight."))
        s3.client.delete_object(Bucket=bucket, Key="budget.pdf")
        later = s3.client.put_object(Bucket=bucket, Key="later.pdf",
                                     Body=pdf_bytes("Nightingale budget, second draft."))
        events += 2  # the delete marker of a versioned SeaweedFS bucket reaches the inbox by no event
        step()

    for name, value in {"HOME": tmp_path / "home", "S3_ENDPOINT_URL": stack.settings.s3_endpoint_url,
                        "BUCKET": bucket, "DERIVED_DIR": tmp_path / "derived", "LANCE_URI": tmp_path / "lance"}.items():
        monkeypatch.setenv(f"MEDIASIFT_{name}", str(value))
    old, new = memo["ETag"].strip('"'), new_memo["ETag"].strip('"')

    assert search("zebra crossing repainted", "--as-of", "before")[0] == ("memo.pdf", old)
    assert search("zebra escaped from the zoo")[0] == ("memo.pdf", new)
    assert {key for key, _ in search("Nightingale budget", "--as-of", "before")} == {"budget.pdf", "memo.pdf"}
    assert search("Nightingale budget", "--as-of", "before")[0] == ("budget.pdf", budget["ETag"].strip('"'))
    assert ("later.pdf", later["ETag"].strip('"')) in search("Nightingale budget")
    assert "later.pdf" not in {key for key, _ in search("Nightingale budget", "--as-of", "before")}
    assert all(etag != old for key, etag in search("zebra crossing repainted") if key == "memo.pdf")
    unknown = CliRunner().invoke(app, ["search", "zebra", "--as-of", "never"])
    assert unknown.exit_code == 1 and "no snapshot 'never'" in unknown.output

    monkeypatch.setenv("MEDIASIFT_DATABASE_URL", stack.settings.inbox_url)

    def show(key: str, *options: str) -> list[dict]:
        shown = CliRunner().invoke(app, ["objects", "show", f"s3://{bucket}/{key}", "--json", *options])
        assert shown.exit_code == 0, shown.output
        return json.loads(shown.output)

    assert [(v["etag"], v["layers"]["pages"]) for v in show("memo.pdf")] == [(old, 0), (new, 1)]
    assert [(v["etag"], v["layers"]["pages"]) for v in show("memo.pdf", "--as-of", "before")] == [(old, 1)], \
        "the version the snapshot held, with its rows in the index as the snapshot pinned it"
    assert [v["etag"] for v in show("budget.pdf", "--as-of", "before")] == [budget["ETag"].strip('"')]
    absent = CliRunner().invoke(app, ["objects", "show", f"s3://{bucket}/later.pdf", "--as-of", "before"])
    assert absent.exit_code == 1 and "was not in the bucket at snapshot 'before'" in absent.output
