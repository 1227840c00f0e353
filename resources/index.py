from functools import cache
from pathlib import Path

import dagster as dg

from mediasift.indexing import Stores, stores_from


@cache
def _stores(derived_dir: str, lance_uri: str) -> Stores:
    return stores_from(Path(derived_dir), lance_uri)


class IndexResource(dg.ConfigurableResource):
    """Parquet feature tables and the LanceDB index."""

    derived_dir: str
    lance_uri: str

    def get(self) -> Stores:
        return _stores(self.derived_dir, self.lance_uri)
