"""The webhook receiver: authenticate, bound, parse, commit to the inbox, then answer 200.

The order is the contract with the senders: nothing is acknowledged before it is durable, nothing is
written for a request that fails any check, and overload is answered with 429/503 so the sender
retries instead of us dropping events.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass

import httpx
import uvicorn
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from mediasift.config import Settings
from mediasift.errors import InboxUnavailable, PayloadError
from mediasift.inbox import AppendResult, Inbox
from mediasift.intake.auth import Authenticator
from mediasift.intake.events import Source
from mediasift.intake.group_commit import GroupCommitter
from mediasift.intake.parsers import parse_notification
from mediasift.intake.sns_signature import (
    CertificateUnavailable,
    SignatureMismatch,
    SigningCertificates,
    SnsVerifier,
    require_sns_url,
)
from mediasift.metrics import RunsCollector, metrics_dir
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
        self.commit_seconds = Histogram("mediasift_inbox_commit_seconds",
                                        "One group commit: the inbox transaction of every request waiting at once",
                                        registry=self.registry,
                                        buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0))
        self.commit_requests = Histogram("mediasift_inbox_commit_requests", "Requests answered by one group commit",
                                         registry=self.registry, buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
        self.registry.register(InboxCollector(inbox))

    def observe_commit(self, requests: int, seconds: float) -> None:
        self.commit_requests.observe(requests)
        self.commit_seconds.observe(seconds)


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


class BodyTooLarge(Exception):
    pass


class Disconnected(Exception):
    """The sender hung up before its body arrived: there is no one to answer."""


async def read_limited(receive: Receive, limit: int, declared: int | None) -> bytes:
    """The whole body, refused as soon as it (or its Content-Length) passes `limit`."""
    if declared is not None and declared > limit:
        raise BodyTooLarge
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        body += message.get("body", b"")
        if len(body) > limit:
            raise BodyTooLarge
        if not message.get("more_body", False):
            return body


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]


JSON_TYPE = (b"content-type", b"application/json")
COMMITTED = b'{"accepted":%d,"duplicates":%d,"ignored":%d}'


def answer(status: int, payload: bytes, headers: dict[str, str] | None = None) -> Answer:
    extra = [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    return Answer(status, payload, [JSON_TYPE, (b"content-length", b"%d" % len(payload)), *extra])


def detail(status: int, text: str, headers: dict[str, str] | None = None) -> Answer:
    return answer(status, json.dumps({"detail": text}).encode(), headers)


UNAUTHORIZED = detail(401, "unauthorized", {"WWW-Authenticate": "Bearer"})
BACKLOG_FULL = detail(429, "inbox backlog over its limit; retry later", {"Retry-After": RETRY_AFTER_SECONDS})
INBOX_DOWN = detail(503, "inbox unavailable; retry later", {"Retry-After": RETRY_AFTER_SECONDS})
SNS_CERTIFICATE_DOWN = detail(503, "SNS signing certificate unavailable; retry later",
                              {"Retry-After": RETRY_AFTER_SECONDS})
CONFIRMED = answer(200, b'{"subscription":"confirmed"}')


class WebhookEndpoint:
    """POST /webhooks/<source> as a bare ASGI app. It runs for every notification, so it does no more than
    the contract needs: no Request object, no dependency solving, answers and metric children made once."""

    def __init__(self, source: Source, settings: Settings, auth: Authenticator, writer: GroupCommitter,
                 metrics: Metrics, sns: SnsVerifier | None = None):
        self.source, self.auth, self.writer = source, auth, writer
        self.sns = sns if source is Source.S3 else None
        self.limit, self.max_backlog = settings.max_body_bytes, settings.max_backlog
        self.derived_prefix, self.sns_host_suffix = settings.derived_prefix, settings.sns_confirm_host_suffix
        self.too_large = detail(413, f"body exceeds {settings.max_body_bytes} bytes")
        self.rejected = metrics.rejected
        self.received = metrics.received.labels(source.value)
        self.duplicates = metrics.duplicates.labels(source.value)
        self.ignored = metrics.ignored.labels(source.value)
        self.latency = metrics.latency.labels(source.value)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            reply = await self.respond(scope, receive)
        except Disconnected:
            return
        await send({"type": "http.response.start", "status": reply.status, "headers": reply.headers})
        await send({"type": "http.response.body", "body": reply.body})

    async def respond(self, scope: Scope, receive: Receive) -> Answer:
        started = time.perf_counter()
        authorization, declared = _auth_and_length(scope["headers"])
        if not self.auth.allows(authorization):
            return self.reject("unauthorized", UNAUTHORIZED)
        try:
            body = await read_limited(receive, self.limit, declared)
        except BodyTooLarge:
            return self.reject("too_large", self.too_large)
        headers = Headers(scope=scope) if self.source is Source.S3 else None  # only S3 bodies are read with theirs
        if self.sns is not None:
            refused = await self.verify_sns(body, headers)
            if refused is not None:
                return refused
        try:
            parsed = parse_notification(self.source, body, headers)
        except PayloadError as error:
            return self.reject("invalid", detail(400, str(error)))
        if parsed.subscribe_url:
            return await self.confirm(parsed.subscribe_url)
        if parsed.events and self.writer.backlog >= self.max_backlog:
            return self.reject("backlog", BACKLOG_FULL)
        events = [e for e in parsed.events if not e.key.startswith(self.derived_prefix)]
        try:
            result = await self.writer.commit(events) if events else AppendResult(0, 0)
        except InboxUnavailable as error:
            log.error("inbox_unavailable source=%s error=%s", self.source.value, error)
            return self.reject("inbox_unavailable", INBOX_DOWN)
        ignored = parsed.ignored + len(parsed.events) - len(events)
        for counter, count in ((self.received, result.inserted), (self.duplicates, result.duplicates),
                               (self.ignored, ignored)):
            if count:
                counter.inc(count)
        self.latency.observe(time.perf_counter() - started)
        return answer(200, COMMITTED % (result.inserted, result.duplicates, ignored))

    async def verify_sns(self, body: bytes, headers: Headers) -> Answer | None:
        """The refusal for an SNS envelope whose signature is missing, unusable or wrong, else None. Runs before
        the parser, so nothing an unsigned envelope says is acted on (written, or a SubscribeURL visited)."""
        try:
            await self.sns.verify(body, headers)
        except PayloadError as error:
            return self.reject("sns_invalid", detail(400, str(error)))
        except SignatureMismatch:
            return self.reject("sns_signature", UNAUTHORIZED)
        except CertificateUnavailable as error:
            log.warning("sns_certificate_unavailable error=%s", error)
            return self.reject("sns_certificate", SNS_CERTIFICATE_DOWN)
        return None

    async def confirm(self, url: str) -> Answer:
        try:
            await confirm_subscription(url, self.sns_host_suffix)
        except (PayloadError, httpx.HTTPError) as error:
            return self.reject("subscription", detail(400, f"SubscribeURL: {error}"))
        return CONFIRMED

    def reject(self, reason: str, reply: Answer) -> Answer:
        self.rejected.labels(self.source.value, reason).inc()
        return reply


def _auth_and_length(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, int | None]:
    authorization = declared = None
    for name, value in headers:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"content-length" and value.isdigit():
            declared = int(value)
    return authorization, declared


class WebhookAnswer(BaseModel):
    """What a committed notification POST is answered with."""

    accepted: int = Field(description="events new to the inbox, committed before this answer")
    duplicates: int = Field(description="events the inbox already held (absorbed)")
    ignored: int = Field(description="non-object events and events under mediasift's own derived prefix")


WEBHOOK_DESCRIPTIONS = {
    Source.TIGRIS: "Tigris object notifications: `{\"events\": [...]}` with several events per POST, or the flat "
                   "single-event form.",
    Source.SEAWEEDFS: "SeaweedFS filer webhook: one event per POST (`event_type`, `key`, `message`).",
    Source.S3: "AWS S3 / MinIO `Records[]`, directly or inside an SNS envelope, whose signature must verify "
               "(SignatureVersion 1 or 2, certificate from an SNS host); an SNS SubscriptionConfirmation is "
               "confirmed by visiting its SubscribeURL (SNS hosts only).",
}


class ReceiverApp(FastAPI):
    """FastAPI for everything but the webhook POSTs, which go straight to their endpoints: they are the hot
    path, and FastAPI's middleware and routing cost about as much CPU as all the rest of such a request.
    The same endpoints are also ordinary routes, for whatever reaches the app another way (a root path)."""

    def __init__(self, endpoints: dict[Source, WebhookEndpoint], secured: list[str], **kwargs):
        super().__init__(**kwargs)
        self.webhook_endpoints = {f"/webhooks/{source.value}": endpoint for source, endpoint in endpoints.items()}
        self.secured = secured
        for path, endpoint in self.webhook_endpoints.items():
            self.router.add_route(path, endpoint, methods=["POST"], include_in_schema=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            endpoint = self.webhook_endpoints.get(scope["path"])
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def openapi(self) -> dict:
        """FastAPI's schema plus the webhook routes, which it cannot see (they are bare ASGI)."""
        if not self.openapi_schema:
            schema = super().openapi()
            components = schema.setdefault("components", {})
            components.setdefault("schemas", {})["WebhookAnswer"] = WebhookAnswer.model_json_schema()
            if self.secured:
                components["securitySchemes"] = {scheme: {"type": "http", "scheme": scheme} for scheme in self.secured}
            for path, endpoint in self.webhook_endpoints.items():
                schema["paths"].setdefault(path, {})["post"] = _webhook_operation(endpoint.source, self.secured)
        return self.openapi_schema


def _webhook_operation(source: Source, secured: list[str]) -> dict:
    detail_schema = {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}
    committed = {"$ref": "#/components/schemas/WebhookAnswer"}
    if source is Source.S3:
        confirmed = {"type": "object", "properties": {"subscription": {"const": "confirmed"}}}
        committed = {"anyOf": [committed, confirmed]}

    def refused(text: str) -> dict:
        return {"description": text, "content": {"application/json": {"schema": detail_schema}}}

    operation = {
        "summary": f"{source.value} notifications",
        "description": WEBHOOK_DESCRIPTIONS[source] + " Answered 200 only once every event is committed.",
        "operationId": f"post_{source.value}_notifications",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
        "responses": {
            "200": {"description": "Committed (or absorbed as duplicates)",
                    "content": {"application/json": {"schema": committed}}},
            "400": refused("Invalid body; `detail` names the offending field; nothing written"),
            "401": refused("Missing or wrong credentials; nothing written"),
            "413": refused("Body over MEDIASIFT_MAX_BODY_BYTES; nothing written"),
            "429": refused("Inbox backlog over MEDIASIFT_MAX_BACKLOG; retry after Retry-After seconds"),
            "503": refused("The inbox cannot commit; retry after Retry-After seconds"),
        },
    }
    if secured:
        operation["security"] = [{scheme: []} for scheme in secured]
    return operation


def create_app(settings: Settings, inbox: Inbox | None = None, sns: SnsVerifier | None = None) -> FastAPI:
    """The receiver app. `sns` replaces the production SNS verifier (https, TLS-verified certificates on
    MEDIASIFT_SNS_CONFIRM_HOST_SUFFIX), for tests that sign with a certificate of their own."""
    inbox = inbox or Inbox(settings.inbox_url)
    auth = Authenticator(settings)
    metrics = Metrics(inbox)
    writer = GroupCommitter(inbox, observe=metrics.observe_commit)
    metrics.registry.register(RunsCollector(metrics_dir(settings.home)))
    if settings.sns_verify_signatures:
        sns = sns or SnsVerifier(SigningCertificates(settings.sns_confirm_host_suffix))
    else:
        sns = None
        log.warning("sns_signatures_unverified MEDIASIFT_SNS_VERIFY_SIGNATURES is off: SNS envelopes are believed "
                    "without their signature")
    endpoints = {source: WebhookEndpoint(source, settings, auth, writer, metrics, sns) for source in WEBHOOK_SOURCES}
    app = ReceiverApp(endpoints, auth.schemes, title="mediasift receiver", version="0.1.0",
                      description="Bucket notifications in; durable inbox events out; search over every layer.")
    app.state.inbox, app.state.metrics = inbox, metrics
    app.router.on_shutdown.append(writer.close)
    app.include_router(query_router(settings, inbox))
    for source in WEBHOOK_SOURCES:
        app.add_api_route(f"/webhooks/{source.value}", _probe, methods=["HEAD"],
                          summary=f"{source.value} endpoint probe", include_in_schema=False)

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


async def _probe() -> Response:
    return Response(status_code=200)


async def confirm_subscription(url: str, host_suffix: str) -> None:
    """Visit an SNS SubscribeURL, but only on an SNS host: the URL comes from the request body."""
    host = require_sns_url(url, "SubscribeURL", host_suffix)
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
