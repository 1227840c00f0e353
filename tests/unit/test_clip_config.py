"""The visual check's expected vector size comes from open_clip's config, without torch in the run."""

import subprocess
import sys

import open_clip

from mediasift.extraction.models.clip import embed_dim


def test_embedding_size_matches_open_clip_for_shipped_architectures():
    for name in ("ViT-B-32", "ViT-L-14", "RN50", "ViT-H-14"):
        assert embed_dim(name) == open_clip.get_model_config(name)["embed_dim"]


def test_embedding_size_is_read_without_importing_torch():
    code = ("import sys; from mediasift.extraction.models.clip import embed_dim; "
            "print(embed_dim('ViT-B-32'), 'torch' in sys.modules, 'open_clip' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["512", "False", "False"]
