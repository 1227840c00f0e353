"""The notebooks in notebooks/, executed top to bottom against a small corpus indexed by the real pipeline
(SeaweedFS and its webhook, the sensor and the ingest asset in-process, real models, then the analysis
assets), with the settings a user's own stack would give them: MEDIASIFT_HOME and friends, by environment.
replay.ipynb gets a versioned bucket of its own, with a snapshot, changes since and a replay into a namespace."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient
from PIL import Image

from assets.analysis import CLASSIFICATIONS, CLUSTERS, DUPLICATES, build_analysis_assets
from mediasift.config import Settings
from mediasift.local.samples import PHOTO_SHOT_SECONDS, photo, photo_variants, write_photo_video, write_text_pdf
from mediasift.local.stack import Stack
from mediasift.snapshots import Snapshots
from mediasift.snapshots.replay import Replay
from mediasift.store.s3 import ObjectStore
from resources import SettingsResource
from tests.helpers import jpeg, pdf_bytes, pipeline_resources, pipeline_settings, png, run, tick, wait_for_events

pytestmark = pytest.mark.slow

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
CELL_TIMEOUT_S = 300
SUBJECTS = ("chelsea", "coffee", "rocket")
PHOTO_SIDE = 320
VIDEO = "clips/cat then espresso.mp4"
MINUTES = "docs/board minutes.pdf"
MINUTES_PAGES = {1: "Quarterly board minutes. Revenue grew in every region this quarter.",
                 2: "The board met in Osaka with Kenji Watanabe to approve the wind turbine budget."}
EXACT_COPY = "copies/chelsea again.png"
NEAR_COPY = "copies/chelsea q60.jpg"
NOISE = "odd/noise.png"
TAXONOMY = """
version: 1
gaps: {min_members: 2}
labels:
  - {name: cats, examples: [photos/chelsea/0.png, photos/chelsea/1.png]}
  - {name: coffee, examples: [photos/coffee/0.png, photos/coffee/1.png]}
  - {name: rockets, examples: [photos/rocket/0.png, photos/rocket/1.png]}
  - {name: boats, prompts: [a sailing boat in a harbour]}
rules:
  - {name: duplicate-upload, when: {duplicate: any}}
"""
MEMO, BUDGET, KEEP, LATER, PHOTO = "memo.pdf", "budget.pdf", "keep.pdf", "later.pdf", "photos/subject.png"
ZEBRA, NIGHTINGALE = "zebra crossing repainted", "Nightingale budget"


@dataclass(frozen=True)
class Corpus:
    bucket: str
    etags: dict[str, str]
    env: dict[str, str]
    """What a user's shell would hold for their own stack: where its state, features and index live."""


@dataclass(frozen=True)
class History(Corpus):
    before: dict[str, str]
    """The ETags of snapshot `before` (`etags`: what the bucket holds now)."""


def small_photo(name: str) -> Image.Image:
    """A bundled photo at most PHOTO_SIDE pixels across: every layer of a picture costs less when it is small."""
    picture = photo(name)
    picture.thumbnail((PHOTO_SIDE, PHOTO_SIDE))
    return picture


def reference_media() -> dict[str, bytes]:
    """Three subjects of six shots each (near duplicates of their first) and an exact copy of one."""
    objects = {f"photos/{name}/{i}.png": png(image)
               for name in SUBJECTS for i, image in enumerate(photo_variants(small_photo(name)))}
    objects[EXACT_COPY] = png(small_photo("chelsea"))
    return objects


def later_media(folder: Path) -> dict[str, bytes]:
    """A near copy, a noise picture, a video of two shots (a cat, then an espresso) and a two-page PDF."""
    folder.mkdir(parents=True, exist_ok=True)
    write_photo_video(folder / "video.mp4", ["chelsea", "coffee"])
    write_text_pdf(folder / "minutes.pdf", MINUTES_PAGES)
    noise = np.random.default_rng(3).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    return {NEAR_COPY: jpeg(small_photo("chelsea"), 60), NOISE: png(Image.fromarray(noise)),
            VIDEO: (folder / "video.mp4").read_bytes(), MINUTES: (folder / "minutes.pdf").read_bytes()}


class Ingest:
    """Uploads to a fresh bucket of the stack (versioned if asked); each `put` runs what the sensor requests, as
    one batch run. `etags` is what the bucket holds now."""

    def __init__(self, stack: Stack, work: Path, instance: dg.DagsterInstance, versioned: bool = False):
        self.bucket = f"t-{uuid.uuid4().hex[:10]}"
        self.storage = ObjectStore.from_settings(stack.settings)
        self.storage.ensure_bucket(self.bucket)
        if versioned:
            self.storage.client.put_bucket_versioning(Bucket=self.bucket,
                                                      VersioningConfiguration={"Status": "Enabled"})
        self.inbox = stack.receiver.server.config.app.state.inbox
        self.cursor = str(self.inbox.last_seq())
        self.resources = pipeline_resources(stack.settings, self.bucket, work)
        self.instance = instance
        self.etags: dict[str, str] = {}
        self.events = 0

    def put(self, objects: dict[str, bytes]) -> None:
        for key, body in objects.items():
            etag = self.storage.client.put_object(Bucket=self.bucket, Key=key, Body=body)["ETag"]
            self.etags[key] = etag.strip('"')
        self.events += len(objects)
        wait_for_events(self.inbox, self.bucket, self.events)
        result = tick(self.instance, self.resources, self.cursor, batch=len(objects))
        self.cursor = result.cursor
        for request in result.run_requests:
            assert run(self.instance, self.resources, request).success

    def delete(self, key: str) -> None:
        """Deleted from the bucket; on a versioned SeaweedFS bucket the delete marker reaches the inbox by no
        event, so nothing runs (the live index keeps the key's rows until a reconcile)."""
        self.storage.client.delete_object(Bucket=self.bucket, Key=key)
        del self.etags[key]


def materialize_analysis(settings: Settings, taxonomy: Path, instance: dg.DagsterInstance,
                         selection: list[dg.AssetKey] | None = None) -> None:
    assert dg.materialize(build_analysis_assets(taxonomy=taxonomy), instance=instance, selection=selection,
                          resources={"settings": SettingsResource.of(settings)}).success


def index_corpus(stack: Stack, work: Path) -> Corpus:
    """The reference photos are ingested and the analysis assets materialised (the anomaly reference among
    them); then the later objects arrive, each scored at arrival against that reference, and the duplicate
    and cluster views are refreshed over everything (the anomaly scores are not: arrival scores stay)."""
    work.mkdir(parents=True, exist_ok=True)
    taxonomy = work / "taxonomy.yaml"
    taxonomy.write_text(TAXONOMY)
    with dg.instance_for_test() as instance:
        ingest = Ingest(stack, work, instance)
        settings = pipeline_settings(stack.settings, ingest.bucket, work)
        ingest.put(reference_media())
        materialize_analysis(settings, taxonomy, instance)
        ingest.put(later_media(work / "media"))
        materialize_analysis(settings, taxonomy, instance, [DUPLICATES, CLASSIFICATIONS, CLUSTERS])
    return Corpus(ingest.bucket, ingest.etags, {"MEDIASIFT_HOME": str(stack.home),
                                                "MEDIASIFT_DERIVED_DIR": str(settings.derived_path),
                                                "MEDIASIFT_LANCE_URI": settings.lance_location})


@pytest.fixture(scope="module")
def corpus(stack: Stack, tmp_path_factory) -> Corpus:
    return index_corpus(stack, tmp_path_factory.mktemp("notebooks"))


@pytest.fixture
def history(stack: Stack, tmp_path) -> History:
    """A versioned bucket of its own (the corpus's stays as its notebooks expect it): three one-page PDFs and a
    photo ingested, snapshot `before`, then memo.pdf and the photo overwritten, budget.pdf deleted and later.pdf
    added, ingested too; then `before` replayed into namespace `retrain`. PDFs and one small photo keep it cheap."""
    with dg.instance_for_test() as instance:
        ingest = Ingest(stack, tmp_path, instance, versioned=True)
        settings = pipeline_settings(stack.settings, ingest.bucket, tmp_path)
        ingest.put({MEMO: pdf_bytes("The zebra crossing was repainted."),
                    BUDGET: pdf_bytes("Project Nightingale budget."), KEEP: pdf_bytes("Harbour lights at dawn."),
                    PHOTO: png(small_photo("chelsea"))})
        Snapshots(settings).create("before")
        before = dict(ingest.etags)
        ingest.delete(BUDGET)
        ingest.put({MEMO: pdf_bytes("A zebra escaped from the zoo overnight."), PHOTO: png(small_photo("coffee")),
                    LATER: pdf_bytes("Nightingale budget, second draft.")})
    replay = Replay(settings)
    plan = replay.plan("before", "retrain")
    assert {result.state.value for result in replay.run(plan)} == {"done"}
    return History(ingest.bucket, dict(ingest.etags), {
        "MEDIASIFT_HOME": str(stack.home), "MEDIASIFT_BUCKET": ingest.bucket,
        "MEDIASIFT_DERIVED_DIR": str(settings.derived_path), "MEDIASIFT_LANCE_URI": settings.lance_location,
        "MEDIASIFT_NOTEBOOK_A": "namespace:retrain", "MEDIASIFT_NOTEBOOK_B": "live",
        "MEDIASIFT_NOTEBOOK_QUERIES": f"{ZEBRA}; {NIGHTINGALE}"}, before)


def execute(name: str, corpus: Corpus) -> nbformat.NotebookNode:
    """Runs the notebook top to bottom in a fresh kernel started in notebooks/ (as Jupyter starts it), its
    environment that of a user's shell pointed at the corpus; a cell that raises fails the test."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute(env={**os.environ, **corpus.env})
    return notebook


def printed(notebook: nbformat.NotebookNode) -> str:
    """What the notebook's cells printed (stdout), in order."""
    return "".join(output.text for cell in notebook.cells if cell.cell_type == "code"
                   for output in cell.outputs if output.output_type == "stream" and output.name == "stdout")


def last_printed(notebook: nbformat.NotebookNode) -> str:
    """What the last code cell printed: each notebook ends by printing what it found."""
    cell = [c for c in notebook.cells if c.cell_type == "code"][-1]
    return "".join(output.text for output in cell.outputs if output.output_type == "stream")


def pictures_shown(notebook: nbformat.NotebookNode) -> int:
    return sum("image/png" in output.get("data", {}) for cell in notebook.cells if cell.cell_type == "code"
               for output in cell.outputs)


def test_explore_finds_the_espresso_shot_and_traces_it_to_the_indexed_version(corpus):
    notebook = execute("explore.ipynb", corpus)

    summary = last_printed(notebook)
    shot = f"{PHOTO_SHOT_SECONDS:.1f}-"
    assert f"top hit s3://{corpus.bucket}/{VIDEO} etag {corpus.etags[VIDEO]} (scenes, {shot}" in summary, summary
    assert "layers: transcript 0, scenes 2, visual 2, pages 0" in summary
    assert f"still holds the indexed version: etag {corpus.etags[VIDEO]}" in printed(notebook)
    assert pictures_shown(notebook) == 2, "the hits' pictures and the video's two keyframes"


def test_analysis_shows_the_exact_copy_the_clusters_and_the_noise_flagged_at_arrival(corpus):
    notebook = execute("analysis.ipynb", corpus)

    summary = last_printed(notebook)
    original = f"s3://{corpus.bucket}/photos/chelsea/0.png"
    assert f"duplicate group (exact): {original} <- s3://{corpus.bucket}/{EXACT_COPY} (sha256)" in summary, summary
    assert "(cats, " in summary, "the largest cluster is named by the taxonomy label its members carry"
    assert f"flagged: s3://{corpus.bucket}/{NOISE} score 1.000" in summary
    assert f"flagged: s3://{corpus.bucket}/{NEAR_COPY}" not in summary, "a recompressed known photo is not unusual"
    assert "visual: 3 clusters" in printed(notebook)
    shown = pictures_shown(notebook)
    assert shown >= 4 + 1 + 3 + 2, f"{shown} pictures: duplicate groups, sizes and map, representatives, scores"


def test_replay_compares_the_replayed_namespace_with_live_naming_exactly_what_changed(history):
    notebook = execute("replay.ipynb", history)

    summary = last_printed(notebook).splitlines()
    where = f"s3://{history.bucket}/"
    tops = {line.split("'")[1]: line.split(": A top ", 1)[1].split("; B top ")
            for line in summary if line.startswith("query ")}
    assert summary[0] == "A: retrain (namespace, 4 objects) -> B: live (live, 4 objects)", summary
    assert [line for line in summary if line.startswith(("added", "removed", "changed", "unchanged"))] == [
        f"added: {where}{LATER} etag {history.etags[LATER]}",
        f"removed: {where}{BUDGET} etag {history.before[BUDGET]}",
        f"changed: {where}{MEMO} etag {history.before[MEMO]} -> {history.etags[MEMO]}",
        f"changed: {where}{PHOTO} etag {history.before[PHOTO]} -> {history.etags[PHOTO]}",
        "unchanged: 1"]
    assert "rows pages: A 3 features, 3 indexed; B 3 features, " in "\n".join(summary)
    assert tops[ZEBRA][0] == f"{where}{MEMO} etag {history.before[MEMO]} (pages)", tops
    assert history.before[MEMO] not in tops[ZEBRA][1], "live holds the memo's new version only"
    assert tops[NIGHTINGALE][0] == f"{where}{BUDGET} etag {history.before[BUDGET]} (pages)", tops
    assert BUDGET not in tops[NIGHTINGALE][1] or "a version live does not hold" in tops[NIGHTINGALE][1], \
        "a deleted object's rows still in the live index are not shown as what live holds"
    assert ("namespace retrain against snapshot before: 0 added, 0 removed, 0 changed, 4 unchanged; "
            "feature rows equal in every layer") in printed(notebook)
    assert pictures_shown(notebook) == 1, "rows per layer and objects changed, one figure"
