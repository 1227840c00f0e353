from functools import cache

import dagster as dg

from mediasift.store import RowStores
from resources.settings import SettingsResource


@cache
def _stores(derived_dir: str, lance_uri: str) -> RowStores:
    return RowStores.at(derived_dir, lance_uri)


class IndexResource(dg.ConfigurableResource):
    """Parquet feature tables and the LanceDB index."""

    settings: SettingsResource

    def get(self) -> RowStores:
        settings = self.settings.get()
        return _stores(str(settings.derived_path.resolve()), settings.lance_location)
