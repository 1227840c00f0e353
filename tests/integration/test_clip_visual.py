"""The visual layer with CLIP configured, on real open_clip, EfficientNet and LanceDB: rows carry a CLIP vector
only then, text→image search ranks pictures by it (fused with BM25 over their words), and weights that
cannot load fail naming the setting to fix.

No trained CLIP is available offline, so the checkpoint is a seeded, randomly initialised ViT-S-32-alt
(open_clip's smallest ViT) saved to disk: the assertions are about the mechanism (which vectors the rows
carry, which row a query vector finds), with the expected order computed from the vectors themselves.
"""

from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image, ImageDraw

from mediasift.config import Settings
from mediasift.errors import ModelLoadError
from mediasift.extraction.extract import extract
from mediasift.extraction.layers import visual
from mediasift.extraction.layers.rows import Row
from mediasift.extraction.models import Models
from mediasift.extraction.models.imagenet import DIM as VISUAL_DIM
from mediasift.identity import ObjectVersion
from mediasift.local.samples import photo
from mediasift.query.search import Filters, Searcher
from mediasift.store.lance import LanceIndex
from mediasift.store.parquet import FeatureTables
from mediasift.store.records import CLIP_COLUMN, to_arrow
from mediasift.store.s3 import Fetched

ARCH = "ViT-S-32-alt"
CLIP_DIM = 256
CHECKPOINT = "random-vit-s-32-alt.pt"
PHOTOS = ObjectVersion("media", "harbour/photos.pdf", '"F6"')
WORDS = ("alfa", "bravo", "charlie", "delta", "foxtrot")
"""Each picture's on-screen text: words no ImageNet tag contains."""
NONSENSE = "vexillum zqxj"
"""A query no picture's words match: only the CLIP vectors can rank the pictures."""


def settings(**clip: str | None) -> Settings:
    return Settings(clip_model=ARCH, **{"clip_pretrained": None, "clip_checkpoint": None, **clip})


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    """A random CLIP (seeded, and not with the loader's seed) saved as an open_clip state dict."""
    torch.manual_seed(7)
    model = open_clip.create_model(ARCH).eval()
    path = tmp_path_factory.mktemp("clip") / CHECKPOINT
    torch.save(model.state_dict(), path)
    return path, model


@pytest.fixture(scope="module")
def models(reference) -> Models:
    return Models(settings(clip_checkpoint=str(reference[0])))


@pytest.fixture(scope="module")
def pictures() -> list[Image.Image]:
    """Five colours with one to five bars of the opposite colour."""
    out = []
    for count, colour in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40), (128, 128, 128)],
                                   start=1):
        image = Image.new("RGB", (320, 240), colour)
        draw = ImageDraw.Draw(image)
        for bar in range(count):
            draw.rectangle([20 + bar * 50, 40, 40 + bar * 50, 200], fill=tuple(255 - c for c in colour))
        out.append(image)
    return out


def page_rows(pictures: list[Image.Image], models: Models, clip) -> list[Row]:
    template = [visual.visual_row("pdf", "page", word, page=n) for n, word in enumerate(WORDS, start=1)]
    return visual.visual_rows(pictures, template, models.imagenet, clip)


@pytest.fixture(scope="module")
def rows(pictures, models) -> list[Row]:
    return page_rows(pictures, models, models.visual_clip)


@pytest.fixture(scope="module")
def searcher(rows, models, tmp_path_factory) -> Searcher:
    index = LanceIndex(str(tmp_path_factory.mktemp("lance")))
    extractor = visual.extractor(models.visual_clip.name)
    index.replace_versions("visual", [PHOTOS.version_hash], [to_arrow(rows, PHOTOS, extractor)])
    return Searcher(index, models)


def clip_order(rows: list[Row], models: Models, query: str) -> list[int]:
    """The pages, nearest first, by the cosine of their CLIP vectors to the query's CLIP text vector."""
    similarity = np.stack([r.clip_vector for r in rows]) @ models.visual_clip.embed_texts([query])[0]
    return [rows[i].page for i in np.argsort(-similarity)]


def test_rows_carry_the_checkpoints_clip_vector_beside_the_efficientnet_feature(rows, models, reference, pictures,
                                                                                 tmp_path):
    clip = models.visual_clip
    with torch.inference_mode():
        expected = reference[1].encode_image(torch.stack([clip.preprocess(p) for p in pictures]))
    expected = torch.nn.functional.normalize(expected, dim=-1).numpy()
    assert np.allclose(np.stack([r.clip_vector for r in rows]), expected, atol=1e-5)
    assert {r.vector.shape for r in rows} == {(VISUAL_DIM,)}
    assert (clip.extractor, clip.untrained) == (f"clip:{ARCH}@{CHECKPOINT}", False)
    tables = FeatureTables(tmp_path)
    tables.write("visual", PHOTOS.object_id, PHOTOS.version_hash, to_arrow(rows, PHOTOS, visual.extractor(clip.name)))
    stored = tables.read("visual")
    assert stored[CLIP_COLUMN].type.list_size == CLIP_DIM
    assert np.allclose(np.array(stored[CLIP_COLUMN].to_pylist()), expected, atol=1e-5)


def test_without_clip_settings_rows_have_no_clip_vector_and_tables_no_clip_column(pictures, models):
    plain = Models(settings())
    assert plain.visual_clip is None
    rows = page_rows(pictures, models, plain.visual_clip)
    assert all(r.clip_vector is None and r.vector.shape == (VISUAL_DIM,) for r in rows)
    assert CLIP_COLUMN not in to_arrow(rows, PHOTOS, visual.extractor()).schema.names
    assert plain.load_counts["clip"] == 0


def test_text_to_image_search_ranks_pictures_by_their_clip_vectors(searcher, rows, models):
    hits = searcher.search(NONSENSE, k=len(rows), filters=Filters(layers=("visual",)))
    assert [hit.page for hit in hits] == clip_order(rows, models, NONSENSE)
    assert {hit.extractor for hit in hits} == {f"efficientnet-lite0@imagenet+clip:{ARCH}@{CHECKPOINT}"}
    assert models.load_counts["clip"] == 1


def query_naming_a_page_clip_does_not_rank_first(rows: list[Row], models: Models) -> tuple[str, int, list[int]]:
    for page, word in enumerate(WORDS, start=1):
        query = f"{NONSENSE} {word}"
        order = clip_order(rows, models, query)
        if order[0] != page:
            return query, page, order
    raise AssertionError("every page is the nearest by CLIP to the query naming it")


def test_a_picture_whose_words_match_too_outranks_the_nearest_by_clip(searcher, rows, models):
    """The page whose on-screen word is in the query comes first; the nearest of the others by CLIP follows."""
    query, page, order = query_naming_a_page_clip_does_not_rank_first(rows, models)
    hits = searcher.search(query, k=2, filters=Filters(layers=("visual",)))
    assert [hit.page for hit in hits] == [page, next(p for p in order if p != page)]


def test_an_untrained_clip_is_only_one_asked_for_and_says_so():
    clip = Models(settings(clip_pretrained="untrained")).visual_clip
    assert clip.untrained and clip.dim == CLIP_DIM
    assert visual.extractor(clip.name) == f"efficientnet-lite0@imagenet+clip:{ARCH}@untrained"


@pytest.fixture(scope="module")
def wrong_shapes(reference) -> Path:
    """The reference checkpoint with one projection of another size."""
    path = reference[0].parent / "wrong-shapes.pt"
    torch.save({**reference[1].state_dict(), "visual.proj": torch.zeros(384, 128)}, path)
    return path


@pytest.mark.parametrize(("arch", "weights", "says"), [
    (ARCH, "missing.pt", "MEDIASIFT_CLIP_CHECKPOINT=.*missing.pt .*not a known tag or valid file path"),
    (ARCH, "wrong-shapes.pt", "MEDIASIFT_CLIP_CHECKPOINT=.*wrong-shapes.pt .*size mismatch for visual.proj"),
    ("ViT-S-32", CHECKPOINT, "MEDIASIFT_CLIP_CHECKPOINT=.*vit-s-32-alt.pt .*MEDIASIFT_CLIP_MODEL=ViT-S-32"),
])
def test_a_checkpoint_that_cannot_load_fails_naming_the_setting(reference, wrong_shapes, arch, weights, says):
    checkpoint = reference[0].parent / weights
    models = Models(Settings(clip_model=arch, clip_pretrained=None, clip_checkpoint=str(checkpoint)))
    with pytest.raises(ModelLoadError, match=says):
        assert models.visual_clip is None


def test_a_pretrained_tag_that_cannot_load_fails_naming_the_setting():
    with pytest.raises(ModelLoadError, match="MEDIASIFT_CLIP_PRETRAINED=no-such-tag"):
        assert Models(settings(clip_pretrained="no-such-tag")).visual_clip is None


def test_extraction_gives_every_picture_of_an_object_its_clip_vector_and_names_the_clip(models, tmp_path):
    """Through `extract`, the path every worker takes: an image's visual row carries the CLIP vector and the
    extractor names both models."""
    path = tmp_path / "object.bin"
    photo("coffee").save(path, format="PNG")
    version = ObjectVersion("media", "cafe/espresso.png", '"E1"')
    result = extract(path, version, Fetched(path.stat().st_size, "0" * 64, "image/png"), models)
    (row,) = result.rows["visual"]
    assert row.clip_vector is not None and len(row.clip_vector) == CLIP_DIM
    assert row.vector is not None and len(row.vector) == VISUAL_DIM
    assert result.extractors["visual"] == f"{visual.EXTRACTOR}+clip:{ARCH}@{CHECKPOINT}"
