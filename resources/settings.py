import json
from functools import cache

import dagster as dg
from pydantic import SecretStr

from mediasift.config import SECRET_FIELDS, Settings


@cache
def _settings(values: str, s3_access_key: str | None, s3_secret_key: str | None) -> Settings:
    secrets = {name: SecretStr(value) for name, value in
               (("s3_access_key", s3_access_key), ("s3_secret_key", s3_secret_key)) if value}
    return Settings(**json.loads(values), **secrets)


class SettingsResource(dg.ConfigurableResource):
    """mediasift's settings (MEDIASIFT_*) as the code location loaded them: the values as config, shown
    in the UI, and the S3 secrets as environment variables, never config. Every other resource is built
    from this one, so a new setting needs no resource change."""

    values: dict
    s3_access_key: str | None = None
    s3_secret_key: str | None = None

    @classmethod
    def of(cls, settings: Settings) -> "SettingsResource":
        return cls(values=settings.model_dump(mode="json", exclude=set(SECRET_FIELDS), exclude_none=True),
                   s3_access_key=dg.EnvVar("MEDIASIFT_S3_ACCESS_KEY"),
                   s3_secret_key=dg.EnvVar("MEDIASIFT_S3_SECRET_KEY"))

    @property
    def key(self) -> str:
        """Identifies these settings within the process (secrets left out)."""
        return json.dumps(self.values, sort_keys=True)

    def get(self) -> Settings:
        return _settings(self.key, self.s3_access_key, self.s3_secret_key)
