from functools import cache
from pathlib import Path

import dagster as dg

from mediasift.indexing import Stores, stores_from


@cache
def _stores(derived_dir: str, lance_uri: str, spool_dir: str) -> Stores:
    return stores_from(Path(derived_dir), lance_uri, Path(spool_dir))


class IndexResource(dg.ConfigurableResource):
    """Parquet feature tables, the LanceDB index and the local spool of objects being processed."""

    derived_dir: str
    lance_uri: str
    spool_dir: str

    def get(self) -> Stores:
        return _stores(self.derived_dir, self.lance_uri, self.spool_dir)
