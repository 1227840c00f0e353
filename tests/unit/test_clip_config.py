"""CLIP settings without loading CLIP: the expected vector size comes from open_clip's config (no torch in
the run), and the name rows, hits and status give the configured CLIP, or none."""

import subprocess
import sys

import open_clip

from mediasift.config import Settings
from mediasift.extraction.layers import visual
from mediasift.extraction.models import Models
from mediasift.extraction.models.clip import configured_name, embed_dim


def test_embedding_size_matches_open_clip_for_shipped_architectures():
    for name in ("ViT-B-32", "ViT-L-14", "RN50", "ViT-H-14"):
        assert embed_dim(name) == open_clip.get_model_config(name)["embed_dim"]


def test_embedding_size_is_read_without_importing_torch():
    code = ("import sys; from mediasift.extraction.models.clip import embed_dim; "
            "print(embed_dim('ViT-B-32'), 'torch' in sys.modules, 'open_clip' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["512", "False", "False"]


def test_clip_is_configured_only_by_weights_and_named_by_them():
    assert configured_name("ViT-B-32", None, None) is None
    assert configured_name("ViT-B-32", "laion2b_s34b_b79k", None) == "ViT-B-32@laion2b_s34b_b79k"
    assert configured_name("ViT-B-32", "laion2b_s34b_b79k", "/models/team/clip-b32.pt") == "ViT-B-32@clip-b32.pt"
    assert configured_name("ViT-B-32", "untrained", None) == "ViT-B-32@untrained"


def test_visual_extractor_names_the_clip_beside_the_tagger_only_when_there_is_one():
    assert visual.extractor() == "efficientnet-lite0@imagenet"
    assert visual.extractor("ViT-B-32@untrained") == "efficientnet-lite0@imagenet+clip:ViT-B-32@untrained"


def test_without_clip_weights_the_pipeline_gets_no_clip_and_loads_none():
    models = Models(Settings(clip_pretrained=None, clip_checkpoint=None))
    assert models.visual_clip is None
    assert models.load_counts["clip"] == 0
