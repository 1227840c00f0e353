"""Group commit for the receiver: the events of every request waiting at the same moment go into one
inbox transaction (one fsync, one Postgres append lock), then each request gets its own answer.

A request is still answered only after its events are committed. If a group's transaction fails, its
requests are retried one by one, so one bad request cannot fail its neighbours.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future

from mediasift.inbox import AppendResult, Inbox
from mediasift.intake.events import NotificationEvent

log = logging.getLogger(__name__)
BACKLOG_REFRESH_SECONDS = 1.0


class GroupCommitter:
    """One writer thread in front of the inbox; also keeps the backlog depth fresh for the 429 check."""

    def __init__(self, inbox: Inbox, max_group: int = 512):
        self.inbox = inbox
        self.max_group = max_group
        self.backlog = inbox.depth()
        self._refreshed_at = time.monotonic()
        self._queue: queue.Queue[tuple[list[NotificationEvent], Future] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="inbox-writer", daemon=True)
        self._thread.start()

    def submit(self, events: list[NotificationEvent]) -> Future[AppendResult]:
        future: Future[AppendResult] = Future()
        self._queue.put((events, future))
        return future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=BACKLOG_REFRESH_SECONDS)
            except queue.Empty:
                self._refresh_backlog()
                continue
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_group:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                batch.append(item)
            self._commit(batch)
            if time.monotonic() - self._refreshed_at > BACKLOG_REFRESH_SECONDS:
                self._refresh_backlog()

    def _commit(self, batch: list[tuple[list[NotificationEvent], Future]]) -> None:
        try:
            results = self.inbox.append_groups([events for events, _ in batch])
        except Exception as error:
            if len(batch) == 1:
                batch[0][1].set_exception(error)
                return
            log.warning("group_commit_failed requests=%d retrying=one_by_one", len(batch))
            for item in batch:
                self._commit([item])
            return
        for (_, future), result in zip(batch, results, strict=True):
            self.backlog += result.inserted
            future.set_result(result)

    def _refresh_backlog(self) -> None:
        try:
            self.backlog = self.inbox.depth()
        except Exception as error:  # the next commit reports the outage to its sender
            log.warning("backlog_refresh_failed error=%s", error)
        self._refreshed_at = time.monotonic()
