import dagster as dg

from mediasift.config import Settings
from mediasift.models import Models, models_for


class ModelsResource(dg.ConfigurableResource):
    """The extraction models, loaded once per worker process on first use."""

    device: str = "cpu"
    whisper_model: str | None = None
    clip_model: str = "ViT-B-32"
    clip_pretrained: str | None = None
    clip_checkpoint: str | None = None

    def get(self) -> Models:
        return models_for(Settings(device=self.device, whisper_model=self.whisper_model, clip_model=self.clip_model,
                                   clip_pretrained=self.clip_pretrained, clip_checkpoint=self.clip_checkpoint))
