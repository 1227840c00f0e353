"""The trained visual model: the timm mapping of the packaged weights is the reference network, it names
what real photos show, and its features stay put under resizing, recompression and cropping."""

import io
import itertools

import numpy as np
import pytest
import torch
from PIL import Image

from mediasift.errors import ModelLoadError
from mediasift.extraction.models.imagenet import DIM, ImageNetModel, default_weights, preprocess
from mediasift.local.samples import photo

KNOWN = {
    "chelsea": {"tiger cat", "Egyptian cat", "tabby"},
    "coffee": {"espresso"},
    "rocket": {"missile", "projectile"},
    "motorcycle_left": {"moped", "motor scooter"},
    "camera": {"tripod"},
}
"""scikit-image's bundled photos and the ImageNet classes they show (a cat, an espresso, a rocket, a
scooter, a man at a camera on a tripod)."""


@pytest.fixture(scope="module")
def model() -> ImageNetModel:
    return ImageNetModel()


def test_the_timm_mapping_gives_the_reference_implementations_logits(model):
    from efficientnet_lite_pytorch import EfficientNet

    reference = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=default_weights()).eval()
    batch = torch.stack([preprocess(photo(name)) for name in KNOWN])
    with torch.inference_mode():
        ours, theirs = model.model(batch), reference(batch)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_the_class_a_photo_shows_is_in_its_top_five(model, name):
    (seen,) = model.see([photo(name)])
    labels = [t.label for t in seen.tags]
    assert len(labels) == 5 and KNOWN[name] & set(labels), labels
    assert seen.vector.shape == (DIM,) and abs(float(np.linalg.norm(seen.vector)) - 1) < 1e-4


def _variants(image: Image.Image) -> dict[str, Image.Image]:
    jpeg = io.BytesIO()
    image.save(jpeg, "JPEG", quality=30)
    w, h = image.size
    return {"resized": image.resize((w // 2, h // 2)), "jpeg q30": Image.open(jpeg).convert("RGB"),
            "cropped 10%": image.crop((w // 20, h // 20, w - w // 20, h - h // 20))}


def test_a_photo_stays_near_itself_and_far_from_other_photos(model):
    names = sorted(KNOWN)
    originals = {name: seen.vector for name, seen in zip(names, model.see([photo(n) for n in names]), strict=True)}
    same, different = [], []
    for name in names:
        variants = _variants(photo(name))
        for label, seen in zip(variants, model.see(list(variants.values())), strict=True):
            same.append((name, label, float(originals[name] @ seen.vector)))
    for a, b in itertools.combinations(names, 2):
        different.append((a, b, float(originals[a] @ originals[b])))
    print("same photo:", sorted(round(c, 3) for *_, c in same))
    print("different photos:", sorted(round(c, 3) for *_, c in different))
    assert min(c for *_, c in same) >= 0.9, same
    assert max(c for *_, c in different) < min(c for *_, c in same), different


def test_weights_that_cannot_load_fail_naming_the_model_and_the_setting(tmp_path):
    broken = tmp_path / "lite0.pth"
    torch.save({"_fc.weight": torch.zeros(10, 1280)}, broken)
    for weights in (str(tmp_path / "missing.pth"), str(broken)):
        with pytest.raises(ModelLoadError, match="efficientnet-lite0@imagenet.*MEDIASIFT_VISUAL_WEIGHTS"):
            ImageNetModel(weights)
