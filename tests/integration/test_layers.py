"""Every modality becomes searchable, checked against media whose content is known (mediasift.local.samples):
real SeaweedFS and webhook, the real sensor and assets in-process, real models, real LanceDB."""

import json
import uuid

import dagster as dg
import httpx
import pytest

from mediasift.config import Settings
from mediasift.extraction.layers.rows import LAYERS
from mediasift.extraction.models import models_for
from mediasift.inbox import Inbox, State
from mediasift.local.samples import TRUTH, write_samples
from mediasift.query.search import Filters, Searcher
from mediasift.store.lance import LanceIndex
from mediasift.store.s3 import ObjectStore
from tests.helpers import CORRUPT_MEDIA, pdf_bytes, pipeline_resources, run_new_events, wait_for_events

PREFIX = "samples/"


class Pipeline:
    """A bucket fed through the real event path; `step()` runs whatever the sensor requests next."""

    def __init__(self, stack, work_dir, instance: dg.DagsterInstance):
        self.bucket = f"t-{uuid.uuid4().hex[:10]}"
        self.storage = ObjectStore.from_settings(stack.settings)
        self.storage.ensure_bucket(self.bucket)
        self.inbox: Inbox = stack.receiver.server.config.app.state.inbox
        self.resources = pipeline_resources(stack.settings, self.bucket, work_dir)
        self.instance = instance
        self.cursor = str(self.inbox.last_seq())
        self.events = 0
        self.searcher = Searcher(LanceIndex(str(work_dir / "lance")), models_for(Settings()))
        self.stores = self.resources["index"].get()

    def put(self, key: str, body: bytes) -> str:
        self.events += 1
        return self.storage.client.put_object(Bucket=self.bucket, Key=key, Body=body)["ETag"].strip('"')

    def delete(self, key: str) -> None:
        self.events += 1
        self.storage.client.delete_object(Bucket=self.bucket, Key=key)

    def step(self, raise_on_error: bool = True) -> list:
        wait_for_events(self.inbox, self.bucket, self.events)
        self.cursor, outcomes = run_new_events(self.instance, self.resources, self.inbox, self.cursor, raise_on_error)
        return outcomes

    def search(self, query: str, k: int = 5, **filters):
        return self.searcher.search(query, k, Filters(**filters))

    def state(self, key: str) -> list[State]:
        return [v.state for v in self.inbox.versions_of(self.bucket, key)]


@pytest.fixture(scope="module")
def pipeline(stack, tmp_path_factory):
    work = tmp_path_factory.mktemp("layers")
    samples = work / "media"
    write_samples(samples)
    with dg.instance_for_test() as instance:
        feed = Pipeline(stack, work, instance)
        for path in sorted(samples.iterdir()):
            feed.put(PREFIX + path.name, path.read_bytes())
        feed.step()
        yield feed


def test_every_sample_is_indexed(pipeline):
    for name in TRUTH:
        assert pipeline.state(PREFIX + name) == [State.DONE], name


def test_spoken_phrase_is_found_at_the_time_it_is_said(pipeline):
    phrase = TRUTH["speech.ogg"]["phrases"][1]
    hits = pipeline.search("when did the harbour in Lisbon reopen", layers=("transcript",), modality="audio")
    assert hits[0].key == PREFIX + "speech.ogg"
    assert abs(hits[0].t_start - phrase["t_start"]) <= 1.0
    assert hits[0].t_end > hits[0].t_start


def test_word_shown_only_in_the_second_shot_is_found_in_that_shot(pipeline):
    second = TRUTH["harbour_report.mp4"]["shots"][1]
    hits = pipeline.search("pelican", layers=("scenes",))
    assert hits[0].key == PREFIX + "harbour_report.mp4"
    assert abs(hits[0].t_start - second["t_start"]) <= 0.5
    assert "PELICAN" in hits[0].text
    first_shot = [h for h in pipeline.search("harbour report", layers=("scenes",)) if h.t_start < 1.0]
    assert first_shot and "PELICAN" not in first_shot[0].text


def test_phrase_that_exists_only_as_pixels_in_a_scan_is_found_on_its_page(pipeline):
    hits = pipeline.search("invoice for turbine maintenance", layers=("pages",))
    assert (hits[0].key, hits[0].page) == (PREFIX + "scanned_invoice.pdf", 2)
    version = pipeline.inbox.versions_of(pipeline.bucket, PREFIX + "scanned_invoice.pdf")[0]
    pages = pipeline.stores.tables.read("pages").to_pylist()
    scanned = [r for r in pages if r["version_hash"] == version.version_hash]
    assert [json.loads(r["extra"])["ocr"] for r in scanned] == [True, True]


def test_entities_are_extracted_with_where_they_occur(pipeline):
    rows = pipeline.stores.tables.read("entities").to_pylist()
    spoken = [r for r in rows if r["key"] == PREFIX + "speech.ogg" and r["text"] == "Lisbon"]
    assert spoken and spoken[0]["label"] == "GPE" and 3.5 <= spoken[0]["t_start"] <= 6.5
    written = [r for r in rows if r["key"] == PREFIX + "board_minutes.pdf" and r["text"] == "Osaka"]
    assert written and (written[0]["label"], written[0]["page"]) == ("GPE", 2)


def test_every_row_carries_lineage_and_an_extractor(pipeline):
    for layer in LAYERS:
        table = pipeline.stores.tables.read(layer)
        if table is None:
            continue
        for column in ("bucket", "key", "etag", "object_id", "version_hash", "extractor", "created_at"):
            assert table[column].null_count == 0, (layer, column)


def test_a_photo_is_found_by_a_word_for_what_it_shows(pipeline):
    """chelsea is a tabby cat: one of ImageNet's cat classes is among its tags, so the word finds it."""
    truth = TRUTH["cat.png"]
    hits = pipeline.search(truth["query"], layers=("visual",))
    assert hits and hits[0].key == PREFIX + "cat.png"
    assert hits[0].extractor == "efficientnet-lite0@imagenet"
    (row,) = [r for r in pipeline.stores.tables.read("visual").to_pylist() if r["key"] == PREFIX + "cat.png"]
    tags = [t["label"] for t in json.loads(row["extra"])["tags"]]
    assert len(tags) == 5 and set(truth["tags_any"]) & set(tags), tags
    assert len(row["vector"]) == 1280 and abs(sum(v * v for v in row["vector"]) - 1) < 1e-3


@pytest.mark.parametrize("shot", [0, 1])
def test_each_shot_of_a_video_of_two_photos_is_found_by_what_it_shows(pipeline, shot):
    """Shot 1 is the cat, shot 2 the espresso: the word for each returns that shot's time range."""
    truth = TRUTH["photo_shots.mp4"]["shots"][shot]
    video = PREFIX + "photo_shots.mp4"
    hits = [h for h in pipeline.search(truth["query"], k=10) if h.key == video]
    pictures = [h for h in pipeline.search(truth["query"], k=10, layers=("visual",)) if h.key == video]
    scene = next((h for h in hits if h.layer == "scenes"), None)
    assert hits and pictures and scene, (truth["query"], hits, pictures)
    for hit in (hits[0], pictures[0], scene):
        assert abs(hit.t_start - truth["t_start"]) <= 0.5, (hit.layer, hit.t_start, hit.text)
    assert scene.text.startswith(f"Shot {shot + 1} (")


def test_a_pdf_page_that_is_a_photo_is_found_on_its_page(pipeline):
    truth = TRUTH["photo_page.pdf"]
    """Page 2 is only pixels (a rocket): no text layer, nothing to OCR; the visual model names it."""
    hits = [h for h in pipeline.search(truth["query"], k=10) if h.key == PREFIX + "photo_page.pdf"]
    assert hits and hits[0].page == truth["photo_page"], hits
    assert any(h.layer == "visual" and h.page == truth["photo_page"] for h in hits), hits


def test_what_a_picture_shows_is_an_entity_and_the_visual_model_is_named(pipeline):
    rows = pipeline.stores.tables.read("entities").to_pylist()
    objects = [(r["text"], r["t_start"]) for r in rows
               if r["key"] == PREFIX + "photo_shots.mp4" and r["label"] == "OBJECT"]
    assert ("espresso", TRUTH["photo_shots.mp4"]["shots"][1]["t_start"]) in objects
    materialization = pipeline.instance.get_latest_materialization_event(dg.AssetKey(["mediasift", "visual"]))
    assert materialization.asset_materialization.metadata["extractor"].value == "efficientnet-lite0@imagenet"


def test_models_are_loaded_once_per_worker_not_per_object(pipeline):
    (counts,) = pipeline.resources["compute"].get().load_counts()
    assert {"whisper", "text", "ocr", "imagenet", "ner", "faces"} == set(counts)
    assert all(count == 1 for count in counts.values()), counts


def test_search_over_http_returns_hits_with_lineage_and_place(pipeline, stack, monkeypatch):
    from mediasift.intake.receiver import ReceiverServer, create_app
    from mediasift.local.processes import LOOPBACK, free_port

    settings = Settings(home=stack.home, lance_uri=pipeline.resources["settings"].get().lance_location)
    server = ReceiverServer(create_app(settings, pipeline.inbox), LOOPBACK, free_port()).start()
    try:
        body = httpx.get(f"{server.url}/search", params={"q": "board meeting in Osaka", "k": 3}, timeout=60).json()
        hit = body["hits"][0]
        assert set(hit) >= {"bucket", "key", "etag", "version_id", "object_id", "layer", "modality", "t_start",
                            "t_end", "page", "text", "score", "extractor"}
        assert (hit["key"], hit["page"]) == (PREFIX + "board_minutes.pdf", 2)
        assert httpx.get(f"{server.url}/search", params={"q": "x", "layer": "bogus"}).status_code == 400
        grouped = httpx.get(f"{server.url}/search", params={"q": "turbine", "group": "true"}, timeout=60).json()
        assert len({g["object_id"] for g in grouped["objects"]}) == len(grouped["objects"])
    finally:
        server.stop()


def test_overwritten_object_returns_only_its_new_content(pipeline):
    pipeline.put("notes/memo.pdf", pdf_bytes("The zebra crossing on Elm Street was repainted."))
    pipeline.step()
    assert pipeline.search("zebra crossing repainted", prefix="notes/")[0].key == "notes/memo.pdf"
    pipeline.put("notes/memo.pdf", pdf_bytes("A giraffe escaped from the city zoo overnight."))
    pipeline.step()
    assert pipeline.state("notes/memo.pdf") == [State.SUPERSEDED, State.DONE]
    assert all("zebra" not in h.text for h in pipeline.search("zebra crossing", k=20, prefix="notes/"))
    assert "giraffe" in pipeline.search("giraffe escaped", prefix="notes/")[0].text


def test_deleted_object_never_returns(pipeline):
    pipeline.put("gone/secret.pdf", pdf_bytes("Project Nightingale budget."))
    pipeline.step()
    assert pipeline.search("Nightingale budget", prefix="gone/")
    version = pipeline.inbox.versions_of(pipeline.bucket, "gone/secret.pdf")[0]
    pipeline.delete("gone/secret.pdf")
    pipeline.step()
    assert pipeline.state("gone/secret.pdf") == [State.DELETED]
    assert pipeline.search("Nightingale budget", prefix="gone/") == []
    assert all(not pipeline.stores.tables.path(layer, version.object_id, version.version_hash).exists()
               for layer in LAYERS)
    assert sum(pipeline.stores.index.count(layer, f"version_hash = '{version.version_hash}'") for layer in LAYERS) == 0


def test_corrupt_media_fails_its_run_naming_the_object_and_leaves_no_rows(pipeline):
    whole = pdf_bytes("Half of this document is missing. " * 40)
    for key, body in CORRUPT_MEDIA.items():
        pipeline.put(key, body if body is not None else whole[: len(whole) // 2])
    pipeline.put("bad/neighbour.pdf", pdf_bytes("The neighbour document about otters is fine."))
    outcomes = pipeline.step(raise_on_error=False)
    assert sum(not o.success for o in outcomes) == len(CORRUPT_MEDIA)
    for key in CORRUPT_MEDIA:
        (version,) = pipeline.inbox.versions_of(pipeline.bucket, key)
        assert (version.state, version.in_dlq, version.attempts) == (State.FAILED, True, 1), \
            f"{key}: corrupt bytes go to the dead-letter queue at once, no retry can fix them"
        assert key in version.last_error and "MediaError" in version.last_error
        assert sum(pipeline.stores.index.count(layer, f"version_hash = '{version.version_hash}'")
                   for layer in LAYERS) == 0
    assert pipeline.state("bad/neighbour.pdf") == [State.DONE]
    assert pipeline.search("otters", prefix="bad/")[0].key == "bad/neighbour.pdf"
