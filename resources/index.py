from functools import cache

import dagster as dg

from mediasift.store import RowStores
from resources.inbox import inbox_at
from resources.settings import SettingsResource


@cache
def _stores(derived_dir: str, lance_uri: str, inbox_url: str) -> RowStores:
    return RowStores.at(derived_dir, lance_uri, inbox_at(inbox_url))


class IndexResource(dg.ConfigurableResource):
    """Parquet feature tables and the LanceDB index, written by every run process (which take turns, through
    the inbox, at creating a table)."""

    settings: SettingsResource

    def get(self) -> RowStores:
        settings = self.settings.get()
        return _stores(str(settings.derived_path.resolve()), settings.lance_location, settings.inbox_url)
