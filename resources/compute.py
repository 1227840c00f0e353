from functools import cache

import dagster as dg

from mediasift.compute import RayCompute, compute_for
from mediasift.config import Settings
from resources.models import ModelsResource
from resources.storage import S3StorageResource


@cache
def _compute(ray: str, ray_actors: int, ray_batch_size: int, s3: tuple, models: tuple):
    endpoint_url, region, access_key, secret_key = s3
    device, whisper_model, clip_model, clip_pretrained, clip_checkpoint = models
    return compute_for(Settings(
        ray=ray, ray_actors=ray_actors, ray_batch_size=ray_batch_size, s3_endpoint_url=endpoint_url or None,
        s3_region=region, s3_access_key=access_key, s3_secret_key=secret_key, device=device,
        whisper_model=whisper_model, clip_model=clip_model, clip_pretrained=clip_pretrained,
        clip_checkpoint=clip_checkpoint,
    ))


class ComputeResource(dg.ConfigurableResource):
    """Where extraction runs: `off` (inline, in the run's process), `local` (a private local Ray) or a Ray
    cluster address (named actor pools that keep models warm for every run). One per process."""

    ray: str = "off"
    ray_actors: int = 2
    ray_batch_size: int = 4
    s3: S3StorageResource
    models: ModelsResource

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Leave Ray at the end of the run, while the process is whole: left to Ray's exit hook, a run
        process lingered 10+ s after its run had finished, still using CPU. (An inline worker stays: its
        models serve the next run in the same process.)"""
        if _compute.cache_info().currsize and isinstance(compute := self.get(), RayCompute):
            compute.close()
            _compute.cache_clear()

    def get(self):
        s3, m = self.s3, self.models
        return _compute(self.ray, self.ray_actors, self.ray_batch_size,
                        (s3.endpoint_url, s3.region, s3.access_key_id, s3.secret_access_key),
                        (m.device, m.whisper_model, m.clip_model, m.clip_pretrained, m.clip_checkpoint))
