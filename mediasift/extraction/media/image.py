"""Still images with Pillow (HEIC/AVIF too when pillow-heif is installed)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError

from mediasift.errors import MediaError

try:
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:
    pass

MAX_PIXELS = 100_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


def load_image(path: Path, max_side: int = 1600) -> Image.Image:
    """A fully decoded RGB image, downscaled to `max_side` (bounded memory; a truncated or mislabelled
    file fails here, not later)."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (max_side, max_side))
            image.load()
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as error:
        raise MediaError(f"cannot decode image: {error}") from error
    rgb.thumbnail((max_side, max_side))
    return rgb
