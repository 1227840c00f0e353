"""Visual embeddings with open_clip. Weights by model name + pretrained tag, or a local checkpoint.

No CLIP weights are installable offline here, so without them the model is random-initialised (seeded,
so every process builds the same one) and marked `untrained`: its vectors still put near-identical
images together (duplicates work) but carry no meaning (no semantic image search).
"""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)
SEED = 20_240_601


@dataclass
class Clip:
    model: object
    preprocess: object
    tokenizer: object
    name: str
    untrained: bool
    device: str

    @property
    def dim(self) -> int:
        return int(self.model.visual.output_dim)

    @property
    def extractor(self) -> str:
        return f"open_clip:{self.name}" + ("(untrained)" if self.untrained else "")

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


def load_clip(model_name: str, pretrained: str | None, checkpoint: str | None, device: str = "cpu") -> Clip:
    import open_clip
    import torch

    weights = checkpoint or pretrained
    untrained = False
    torch.manual_seed(SEED)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=weights, device=device)
    except Exception as error:  # a hub download that cannot happen offline, a missing file
        if not weights:
            raise
        log.error("clip_weights_unavailable model=%s weights=%s error=%s; the visual layer is UNTRAINED",
                  model_name, weights, error)
        torch.manual_seed(SEED)
        model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=None, device=device)
        weights = None
    if not weights:
        untrained = True
        log.warning("clip_untrained model=%s: no weights configured; visual vectors carry no meaning", model_name)
    model.eval()
    name = f"{model_name}/{pretrained or checkpoint or 'random'}"
    return Clip(model, preprocess, open_clip.get_tokenizer(model_name), name, untrained, device)


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
