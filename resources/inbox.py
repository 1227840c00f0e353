from functools import cache

import dagster as dg

from mediasift.inbox import Inbox
from resources.settings import SettingsResource


@cache
def inbox_at(url: str) -> Inbox:
    return Inbox(url)


class InboxResource(dg.ConfigurableResource):
    """The mediasift inbox (event log + object version states); one engine per process."""

    settings: SettingsResource

    def get(self) -> Inbox:
        return inbox_at(self.settings.get().inbox_url)
