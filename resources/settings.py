import json
from functools import cache

import dagster as dg

from mediasift.config import SECRET_FIELDS, Settings


@cache
def _settings(values: str) -> Settings:
    return Settings(**json.loads(values))


class SettingsResource(dg.ConfigurableResource):
    """mediasift's settings (MEDIASIFT_*) as the code location loaded them, shown in the UI. Secrets are
    left out: the process reads them from its environment (MEDIASIFT_S3_ACCESS_KEY, …), as Dagster's
    `EnvVar` does. Every other resource is built from this one, so a new setting needs no resource change."""

    values: dict

    @classmethod
    def of(cls, settings: Settings) -> "SettingsResource":
        return cls(values=settings.model_dump(mode="json", exclude=set(SECRET_FIELDS), exclude_none=True))

    @property
    def key(self) -> str:
        """Identifies these settings within the process."""
        return json.dumps(self.values, sort_keys=True)

    def get(self) -> Settings:
        return _settings(self.key)
