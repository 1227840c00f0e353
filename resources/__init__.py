"""Dagster resources: thin wrappers that hand mediasift services to assets, sensors and ops, all built
here from one `Settings`."""

import dagster as dg

from mediasift.config import Settings
from resources.compute import ComputeResource
from resources.inbox import InboxResource
from resources.index import IndexResource
from resources.s3 import S3Resource
from resources.settings import SettingsResource

__all__ = ["ComputeResource", "InboxResource", "IndexResource", "S3Resource", "SettingsResource",
           "build_resources"]


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """Resources for one environment. Secrets stay environment variables (never resource config the
    UI would show)."""
    shared = SettingsResource.of(settings)
    return {
        "settings": shared,
        "inbox": InboxResource(settings=shared),
        "s3": S3Resource(endpoint_url=settings.s3_endpoint_url, region_name=settings.s3_region,
                         aws_access_key_id=dg.EnvVar("MEDIASIFT_S3_ACCESS_KEY"),
                         aws_secret_access_key=dg.EnvVar("MEDIASIFT_S3_SECRET_KEY")),
        "index": IndexResource(settings=shared),
        "compute": ComputeResource(settings=shared),
    }
