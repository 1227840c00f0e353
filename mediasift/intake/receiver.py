"""The webhook receiver: authenticate, bound, parse, commit to the inbox, then answer 200.

The order is the contract with the senders: nothing is acknowledged before it is durable, nothing is
written for a request that fails any check, and overload is answered with 429/503 so the sender
retries instead of us dropping events.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import threading
import time
from urllib.parse import urlsplit

import httpx
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool

from mediasift.config import Settings, secret
from mediasift.errors import InboxUnavailable, PayloadError
from mediasift.inbox import AppendResult, Inbox
from mediasift.intake.events import Parsed, Source
from mediasift.intake.group_commit import GroupCommitter
from mediasift.intake.parsers import parse_notification
from mediasift.query.api import query_router

log = logging.getLogger(__name__)
WEBHOOK_SOURCES = (Source.TIGRIS, Source.SEAWEEDFS, Source.S3)
RETRY_AFTER_SECONDS = "5"


class Metrics:
    """Prometheus metrics of one receiver (own registry, so several apps can live in one process)."""

    def __init__(self, inbox: Inbox):
        self.registry = CollectorRegistry()
        self.received = Counter("mediasift_events_received_total", "Object events committed to the inbox",
                                ["source"], registry=self.registry)
        self.duplicates = Counter("mediasift_events_duplicate_total", "Events absorbed as duplicates",
                                  ["source"], registry=self.registry)
        self.ignored = Counter("mediasift_events_ignored_total", "Non-object or own-prefix events ignored",
                               ["source"], registry=self.registry)
        self.rejected = Counter("mediasift_requests_rejected_total", "Webhook requests refused",
                                ["source", "reason"], registry=self.registry)
        self.latency = Histogram("mediasift_webhook_seconds", "Time from request to committed answer",
                                 ["source"], registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0))
        self.registry.register(InboxCollector(inbox))


class InboxCollector(Collector):
    """Inbox gauges, read with one query per scrape."""

    def __init__(self, inbox: Inbox):
        self.inbox = inbox

    def collect(self):
        try:
            counts = self.inbox.counts()
        except InboxUnavailable:
            yield GaugeMetricFamily("mediasift_inbox_up", "Whether the inbox answered", value=0)
            return
        yield GaugeMetricFamily("mediasift_inbox_up", "Whether the inbox answered", value=1)
        yield GaugeMetricFamily("mediasift_inbox_depth", "Object versions waiting for a run", value=counts["pending"])
        versions = GaugeMetricFamily("mediasift_versions", "Object versions by state", labels=["state"])
        for state, count in counts.items():
            versions.add_metric([state], count)
        yield versions


class Authenticator:
    def __init__(self, settings: Settings):
        self.bearer = secret(settings.webhook_token)
        password = secret(settings.webhook_basic_password)
        self.basic = (
            base64.b64encode(f"{settings.webhook_basic_user}:{password}".encode()).decode()
            if settings.webhook_basic_user and password else None
        )
        if not self.bearer and not self.basic:
            log.warning("receiver_auth_disabled reason=no webhook token or basic credentials configured")

    def allows(self, header: str | None) -> bool:
        if not self.bearer and not self.basic:
            return True
        scheme, _, value = (header or "").partition(" ")
        expected = {"bearer": self.bearer, "basic": self.basic}.get(scheme.lower())
        return bool(expected) and hmac.compare_digest(value.strip().encode(), expected.encode())


class BodyTooLarge(Exception):
    pass


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    return bytes(body)


def create_app(settings: Settings, inbox: Inbox | None = None) -> FastAPI:
    inbox = inbox or Inbox(settings.inbox_url)
    auth = Authenticator(settings)
    writer = GroupCommitter(inbox)
    metrics = Metrics(inbox)
    app = FastAPI(title="mediasift receiver", version="0.1.0",
                  description="Bucket notifications in; durable inbox events out; search over every layer.")
    app.state.inbox = inbox
    app.router.on_shutdown.append(writer.close)
    app.include_router(query_router(settings, inbox))

    def reject(source: Source, reason: str, status: int, detail: str, headers: dict | None = None):
        metrics.rejected.labels(source.value, reason).inc()
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    async def commit(source: Source, parsed: Parsed) -> dict:
        own = [e for e in parsed.events if e.key.startswith(settings.derived_prefix)]
        events = [e for e in parsed.events if e not in own]
        result = await asyncio.wrap_future(writer.submit(events)) if events else AppendResult(0, 0)
        metrics.received.labels(source.value).inc(result.inserted)
        metrics.duplicates.labels(source.value).inc(result.duplicates)
        metrics.ignored.labels(source.value).inc(parsed.ignored + len(own))
        return {"accepted": result.inserted, "duplicates": result.duplicates, "ignored": parsed.ignored + len(own)}

    async def receive(source: Source, request: Request) -> Response:
        started = time.perf_counter()
        if not auth.allows(request.headers.get("authorization")):
            return reject(source, "unauthorized", 401, "unauthorized", {"WWW-Authenticate": "Bearer"})
        try:
            body = await read_limited(request, settings.max_body_bytes)
        except BodyTooLarge:
            return reject(source, "too_large", 413, f"body exceeds {settings.max_body_bytes} bytes")
        try:
            parsed = parse_notification(source, body, request.headers)
        except PayloadError as error:
            return reject(source, "invalid", 400, str(error))
        if parsed.subscribe_url:
            try:
                await confirm_subscription(parsed.subscribe_url, settings.sns_confirm_host_suffix)
            except (PayloadError, httpx.HTTPError) as error:
                return reject(source, "subscription", 400, f"SubscribeURL: {error}")
            return JSONResponse({"subscription": "confirmed"})
        if parsed.events and writer.backlog >= settings.max_backlog:
            return reject(source, "backlog", 429, "inbox backlog over its limit; retry later",
                          {"Retry-After": RETRY_AFTER_SECONDS})
        try:
            answer = await commit(source, parsed)
        except InboxUnavailable as error:
            log.error("inbox_unavailable source=%s error=%s", source.value, error)
            return reject(source, "inbox_unavailable", 503, "inbox unavailable; retry later",
                          {"Retry-After": RETRY_AFTER_SECONDS})
        metrics.latency.labels(source.value).observe(time.perf_counter() - started)
        return JSONResponse(answer)

    for source in WEBHOOK_SOURCES:
        _add_webhook_routes(app, source, receive)

    @app.get("/healthz", summary="Liveness and inbox reachability")
    async def healthz() -> JSONResponse:
        try:
            await run_in_threadpool(inbox.ping)
        except Exception as error:
            return JSONResponse({"status": "inbox unavailable", "error": type(error).__name__}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def metrics_endpoint() -> Response:
        payload = await run_in_threadpool(generate_latest, metrics.registry)
        return Response(payload, media_type=CONTENT_TYPE_LATEST)

    return app


def _add_webhook_routes(app: FastAPI, source: Source, receive) -> None:
    path = f"/webhooks/{source.value}"

    async def post(request: Request) -> Response:
        return await receive(source, request)

    async def probe() -> Response:
        return Response(status_code=200)

    app.add_api_route(path, post, methods=["POST"], summary=f"{source.value} notifications",
                      response_model=None)
    app.add_api_route(path, probe, methods=["HEAD"], summary=f"{source.value} endpoint probe",
                      include_in_schema=False)


async def confirm_subscription(url: str, host_suffix: str) -> None:
    """Visit an SNS SubscribeURL, but only on an SNS host: the URL comes from the request body."""
    host = urlsplit(url).hostname or ""
    if not host.endswith(host_suffix):
        raise PayloadError("SubscribeURL", f"host {host!r} is not an SNS host (*{host_suffix})")
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(url)
    if response.status_code >= 300:
        raise PayloadError("SubscribeURL", f"confirmation answered {response.status_code}")
    log.info("sns_subscription_confirmed host=%s", host)


class ReceiverServer:
    """The receiver served by uvicorn on a background thread (the CLI's `up` and the tests)."""

    def __init__(self, app: FastAPI, host: str, port: int):
        self.host, self.port = host, port
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="mediasift-receiver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> ReceiverServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"receiver did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
