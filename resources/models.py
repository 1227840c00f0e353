import dagster as dg


class ModelsResource(dg.ConfigurableResource):
    """Which models extraction uses; each worker loads them once, on first use (see ComputeResource)."""

    device: str = "cpu"
    whisper_model: str | None = None
    clip_model: str = "ViT-B-32"
    clip_pretrained: str | None = None
    clip_checkpoint: str | None = None
