"""Group commit for the receiver: the events of every request waiting at the same moment go into one
inbox transaction (one fsync, one Postgres append lock), then each request gets its own answer.

A request is still answered only after its events are committed. If a group's transaction fails, its
requests are retried one by one, so one bad request cannot fail its neighbours. Requests from an event
loop are answered with one wake-up of that loop per group, not one per request.

Groups linger briefly for senders about to come back. Without that, a busy receiver's groups split in two
and stay split: while one group commits, the senders it holds wait for their answers and the others queue
up, so the next group holds only those others, and so on, one commit (one fsync, the bulk of a group's
cost) for every half of the senders. So a group waits for as many requests as were active around the last
one (the last group plus those that queued behind it), but never longer than the last commit took: at
worst a request waits one commit more, and a lone sender, whose last group was itself alone, never waits.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future
from typing import NamedTuple

from mediasift.errors import InboxUnavailable
from mediasift.inbox import AppendResult, Inbox
from mediasift.intake.events import NotificationEvent

log = logging.getLogger(__name__)
BACKLOG_REFRESH_SECONDS = 1.0
MAX_LINGER_SECONDS = 0.005
"""The longest a group waits for more requests, however slow the last commit was."""

Outcome = AppendResult | BaseException


class _Request(NamedTuple):
    """One request's events, and how to answer it (a tuple: one of these is made per POST)."""

    events: list[NotificationEvent]
    future: Future[AppendResult] | asyncio.Future[AppendResult]
    loop: asyncio.AbstractEventLoop | None = None
    """The loop that owns `future`, when it is an asyncio future (only that loop may settle it)."""


class GroupCommitter:
    """One writer thread in front of the inbox; also keeps the backlog depth fresh for the 429 check."""

    def __init__(self, inbox: Inbox, max_group: int = 512, observe: Callable[[int, float], None] | None = None):
        """`observe(requests, seconds)` is told of each group committed: how many requests it held and how long
        its transaction took (the receiver's metrics)."""
        self.inbox = inbox
        self.max_group = max_group
        self.observe = observe
        self.backlog = inbox.depth()
        self._refreshed_at = time.monotonic()
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        """SimpleQueue: put and get are C calls, where a Queue takes a Python Condition for each."""
        self._closing = threading.Lock()
        self._closed = False
        self._expected = 1
        """Requests active around the last group: how many the next one waits for."""
        self._linger = 0.0
        """How long the last commit took (capped): the longest the next group waits."""
        self._thread = threading.Thread(target=self._run, name="inbox-writer", daemon=True)
        self._thread.start()

    def submit(self, events: list[NotificationEvent]) -> Future[AppendResult]:
        """From any thread: a future settled once the events are committed (or the commit failed)."""
        future: Future[AppendResult] = Future()
        self._put(_Request(events, future))
        return future

    async def commit(self, events: list[NotificationEvent]) -> AppendResult:
        """From an event loop: the events' result once they are committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AppendResult] = loop.create_future()
        self._put(_Request(events, future, loop))
        return await future

    def close(self) -> None:
        """Commit what was submitted before, then stop; later submissions raise InboxUnavailable."""
        with self._closing:
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout=10)

    def _put(self, request: _Request) -> None:
        with self._closing:
            if self._closed:
                raise InboxUnavailable("the inbox writer has stopped: the receiver is shutting down")
            self._queue.put(request)

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=BACKLOG_REFRESH_SECONDS)
            except queue.Empty:
                self._refresh_backlog()
                continue
            if first is None:
                return
            self._commit(self._group(first))
            if time.monotonic() - self._refreshed_at > BACKLOG_REFRESH_SECONDS:
                self._refresh_backlog()

    def _group(self, first: _Request) -> list[_Request]:
        """`first`, every request already waiting behind it and, for up to the last commit's duration, those
        that arrive until the group is as large as the activity around the last one; at most `max_group`."""
        batch = [first]
        stopping = self._take_waiting(batch)
        target = min(self._expected, self.max_group)
        deadline = time.monotonic() + self._linger
        while not stopping and len(batch) < target and (remaining := deadline - time.monotonic()) > 0:
            try:
                item = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)
                break
            batch.append(item)
            stopping = self._take_waiting(batch)
        self._expected = len(batch) + self._queue.qsize()
        return batch

    def _take_waiting(self, batch: list[_Request]) -> bool:
        """Move the requests already queued into `batch` (up to `max_group`); True when close() was called."""
        while len(batch) < self.max_group:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return False
            if item is None:
                self._queue.put(None)
                return True
            batch.append(item)
        return False

    def _commit(self, batch: list[_Request]) -> None:
        started = time.monotonic()
        try:
            results = self.inbox.append_groups([request.events for request in batch])
        except Exception as error:
            if len(batch) == 1:
                _deliver(batch, [error])
                return
            log.warning("group_commit_failed requests=%d retrying=one_by_one", len(batch))
            for request in batch:
                self._commit([request])
            return
        took = time.monotonic() - started
        self._linger = min(took, MAX_LINGER_SECONDS)
        self.backlog += sum(result.inserted for result in results)
        if self.observe is not None:
            self.observe(len(batch), took)
        _deliver(batch, results)

    def _refresh_backlog(self) -> None:
        try:
            self.backlog = self.inbox.depth()
        except Exception as error:  # the next commit reports the outage to its sender
            log.warning("backlog_refresh_failed error=%s", error)
        self._refreshed_at = time.monotonic()


def _deliver(batch: list[_Request], outcomes: list[Outcome]) -> None:
    """Settle thread futures here and now; asyncio futures with one call into each loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, Outcome]]] = defaultdict(list)
    for request, outcome in zip(batch, outcomes, strict=True):
        if request.loop is None:
            _settle(request.future, outcome)
        else:
            by_loop[request.loop].append((request.future, outcome))
    for loop, settled in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle_all, settled)
        except RuntimeError:  # the loop has closed: its server stopped, nobody is waiting for the answers
            log.warning("group_commit_answers_undelivered requests=%d reason=event loop closed", len(settled))


def _settle_all(settled: list[tuple[asyncio.Future, Outcome]]) -> None:
    for future, outcome in settled:
        _settle(future, outcome)


def _settle(future: Future | asyncio.Future, outcome: Outcome) -> None:
    if future.done():  # cancelled by its waiter: the commit stands, the answer has no one to go to
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
