"""Dagster resources: thin wrappers that hand mediasift services to assets, sensors and ops."""


import dagster as dg

from mediasift.config import Settings
from resources.compute import ComputeResource
from resources.inbox import InboxResource
from resources.index import IndexResource
from resources.models import ModelsResource
from resources.storage import S3StorageResource

__all__ = ["ComputeResource", "InboxResource", "IndexResource", "ModelsResource", "S3StorageResource",
           "build_resources"]


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """Resources for one environment. Secrets stay environment variables (never resource config the
    UI would show)."""
    s3 = S3StorageResource(
        endpoint_url=settings.s3_endpoint_url or "",
        region=settings.s3_region,
        bucket=settings.bucket,
        ignore_prefix=settings.derived_prefix,
        access_key_id=dg.EnvVar("MEDIASIFT_S3_ACCESS_KEY"),
        secret_access_key=dg.EnvVar("MEDIASIFT_S3_SECRET_KEY"),
    )
    models = ModelsResource(device=settings.device, whisper_model=settings.whisper_model,
                            clip_model=settings.clip_model, clip_pretrained=settings.clip_pretrained,
                            clip_checkpoint=settings.clip_checkpoint)
    return {
        "inbox": InboxResource(database_url=settings.inbox_url, max_attempts=settings.max_attempts,
                               lease_seconds=settings.lease_seconds, batch_size=settings.sensor_batch_size),
        "s3": s3,
        "index": IndexResource(derived_dir=str(settings.derived_path.resolve()), lance_uri=settings.lance_location),
        "compute": ComputeResource(ray=settings.ray, ray_actors=settings.ray_actors,
                                   ray_batch_size=settings.ray_batch_size, s3=s3, models=models),
    }
