from functools import cache

import dagster as dg

from mediasift.inbox import Inbox


@cache
def _inbox(url: str) -> Inbox:
    return Inbox(url)


class InboxResource(dg.ConfigurableResource):
    """The mediasift inbox (event log + object version states); one engine per process."""

    database_url: str
    max_attempts: int = 3
    lease_seconds: int = 900
    batch_size: int = 200

    def get(self) -> Inbox:
        return _inbox(self.database_url)
