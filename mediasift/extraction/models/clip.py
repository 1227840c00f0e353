"""CLIP (open_clip): an image vector in the space of its own text tower, so a query in words finds pictures by
what they show. The visual layer carries one only when weights are configured: an open_clip pretrained tag
(MEDIASIFT_CLIP_PRETRAINED, from the local cache: no hub is reachable offline) or a local checkpoint
(MEDIASIFT_CLIP_CHECKPOINT). No CLIP weights are installable here, so the EfficientNet feature stays the
visual layer's own vector either way.

Weights that cannot load are an error naming the setting to fix, never a silent fall-back to random ones. A
random CLIP (seeded, so every process builds the same one) is only what someone asked for, by
`MEDIASIFT_CLIP_PRETRAINED=untrained` or by loading without weights as the benchmarks do (a random model
runs at the speed of a trained one), and its name says `untrained`.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mediasift.errors import ModelLoadError

log = logging.getLogger(__name__)
SEED = 20_240_601
UNTRAINED = "untrained"
"""The pretrained tag that asks for a random CLIP (tests, trying the text→image path without weights)."""


@dataclass
class Clip:
    model: object
    preprocess: object
    tokenizer: object
    name: str
    """Architecture and weights, `ViT-B-32@laion2b_s34b_b79k`, `ViT-B-32@clip.pt` or `ViT-B-32@untrained`."""
    untrained: bool
    device: str

    @property
    def dim(self) -> int:
        return int(self.model.visual.output_dim)

    @property
    def extractor(self) -> str:
        return f"clip:{self.name}"

    def embed_images(self, images: list[Image.Image], batch_size: int = 32) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(images), batch_size):
                batch = torch.stack([self.preprocess(im.convert("RGB")) for im in images[i:i + batch_size]])
                features = self.model.encode_image(batch.to(self.device))
                out.append(torch.nn.functional.normalize(features, dim=-1).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), dtype=np.float32)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            features = self.model.encode_text(self.tokenizer(texts).to(self.device))
            return torch.nn.functional.normalize(features, dim=-1).float().cpu().numpy()


def clip_name(model_name: str, pretrained: str | None, checkpoint: str | None) -> str:
    """How rows, hits and status name this CLIP: a checkpoint by its file name (not its whole path)."""
    return f"{model_name}@{Path(checkpoint).name if checkpoint else pretrained or UNTRAINED}"


def configured_name(model_name: str, pretrained: str | None, checkpoint: str | None) -> str | None:
    """The name of the CLIP these settings give the visual layer, without loading it; None when none is set."""
    return clip_name(model_name, pretrained, checkpoint) if pretrained or checkpoint else None


def load_clip(model_name: str, pretrained: str | None, checkpoint: str | None, device: str = "cpu") -> Clip:
    """The checkpoint wins over the pretrained tag. Raises ModelLoadError when the weights cannot be loaded."""
    import open_clip
    import torch

    weights = checkpoint or (None if pretrained == UNTRAINED else pretrained)
    name = clip_name(model_name, pretrained, checkpoint)
    torch.manual_seed(SEED)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=weights, device=device)
    except Exception as error:  # a missing file, wrong shapes, a tag not in the cache, an unknown architecture
        raise ModelLoadError(load_failure(model_name, pretrained, checkpoint, error)) from error
    if weights is None:
        log.warning("clip_untrained model=%s: random weights (seeded); its vectors carry no meaning", name)
    return Clip(model.eval(), preprocess, open_clip.get_tokenizer(model_name), name, weights is None, device)


def load_failure(model_name: str, pretrained: str | None, checkpoint: str | None, error: Exception) -> str:
    cause = f"({type(error).__name__}: {' '.join(str(error).split())[:300]})"
    if checkpoint:
        return (f"clip:{model_name}: cannot load MEDIASIFT_CLIP_CHECKPOINT={checkpoint} {cause}; point "
                f"MEDIASIFT_CLIP_CHECKPOINT at an open_clip state dict of MEDIASIFT_CLIP_MODEL={model_name} "
                "(or set MEDIASIFT_CLIP_MODEL to its architecture), or unset it for no CLIP vectors")
    if pretrained and pretrained != UNTRAINED:
        return (f"clip:{model_name}: cannot load MEDIASIFT_CLIP_PRETRAINED={pretrained} {cause}; set "
                f"MEDIASIFT_CLIP_PRETRAINED to an open_clip tag of {model_name} whose weights are in the local "
                "cache, use MEDIASIFT_CLIP_CHECKPOINT for a file, or unset it for no CLIP vectors")
    return f"clip:{model_name}: cannot build MEDIASIFT_CLIP_MODEL={model_name} {cause}; name an open_clip architecture"


def embed_dim(model_name: str) -> int:
    """The embedding size of an open_clip architecture, read from the config open_clip ships, without
    importing open_clip: that pulls in torch, seconds of CPU in every Dagster run that only checks the
    index. Architectures registered at runtime fall back to open_clip's own lookup."""
    package = importlib.util.find_spec("open_clip")
    shipped = Path(package.submodule_search_locations[0]) / "model_configs" / f"{model_name}.json"
    if shipped.is_file():
        return int(json.loads(shipped.read_text())["embed_dim"])
    import open_clip

    return int(open_clip.get_model_config(model_name)["embed_dim"])
