"""The real receiver over HTTP (uvicorn on a free loopback port) in front of a real inbox."""

import asyncio
import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest
from starlette.testclient import TestClient

from mediasift.config import Settings
from mediasift.inbox import Inbox
from mediasift.intake.receiver import ReceiverServer, create_app
from mediasift.local.postgres import throwaway_postgres
from mediasift.local.processes import LOOPBACK, free_port
from tests.conftest import payload

TOKEN = "t0ken-for-tests"


@pytest.fixture
def serve(tmp_path):
    servers = []

    def start(inbox: Inbox | None = None, **overrides) -> tuple[str, Inbox]:
        settings = Settings(home=tmp_path, webhook_token=TOKEN, **overrides)
        box = inbox or Inbox(settings.inbox_url)
        server = ReceiverServer(create_app(settings, box), LOOPBACK, free_port()).start()
        servers.append(server)
        return server.url, box

    yield start
    for server in servers:
        server.stop()


def post(url: str, source: str, body: bytes, headers: dict | None = None) -> httpx.Response:
    return httpx.post(f"{url}/webhooks/{source}", content=body,
                      headers={"Authorization": f"Bearer {TOKEN}", **(headers or {})}, timeout=10)


def test_all_events_of_one_post_are_committed_before_the_200(serve):
    url, inbox = serve()
    response = post(url, "tigris", payload("tigris-documented.json"))
    assert response.status_code == 200
    assert response.json() == {"accepted": 2, "duplicates": 0, "ignored": 0}
    assert [e.kind.value for e in inbox.events_after(0, 10)] == ["created", "deleted"]


def test_same_notification_twice_is_one_inbox_entry(serve):
    url, inbox = serve()
    first = post(url, "seaweedfs", payload("seaweedfs-create.json"))
    second = post(url, "seaweedfs", payload("seaweedfs-create.json"))
    assert (first.json()["accepted"], second.json()["duplicates"]) == (1, 1)
    assert len(inbox.events_after(0, 10)) == 1


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer"])
def test_unauthenticated_post_gets_a_bare_401_and_writes_nothing(serve, authorization):
    url, inbox = serve()
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.post(f"{url}/webhooks/tigris", content=payload("tigris-documented.json"), headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": "unauthorized"}
    assert inbox.events_after(0, 10) == []


def test_basic_auth_is_accepted_when_configured(serve):
    url, inbox = serve(webhook_basic_user="tigris", webhook_basic_password="s3cret")
    basic = base64.b64encode(b"tigris:s3cret").decode()
    response = httpx.post(f"{url}/webhooks/tigris", content=payload("tigris-blog-flat.json"),
                          headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 200
    assert len(inbox.events_after(0, 10)) == 1


def test_malformed_post_is_400_naming_the_field_and_writes_nothing(serve):
    url, inbox = serve()
    body = {"events": [
        {"eventName": "OBJECT_CREATED_PUT", "bucket": "b", "object": {"key": "good.mp4", "eTag": "1"}},
        {"eventName": "OBJECT_CREATED_PUT", "bucket": "b", "object": {"eTag": "2"}},
    ]}
    response = post(url, "tigris", json.dumps(body).encode())
    assert response.status_code == 400
    assert "events[1].object.key" in response.json()["detail"]
    assert post(url, "seaweedfs", b"{truncated").status_code == 400
    assert inbox.events_after(0, 10) == []


def test_oversized_body_is_413_and_writes_nothing(serve):
    url, inbox = serve(max_body_bytes=2048)
    body = {"events": [{"eventName": "OBJECT_CREATED_PUT", "bucket": "b", "object": {"key": f"k{i}", "eTag": "1"}}
                       for i in range(100)]}
    assert post(url, "tigris", json.dumps(body).encode()).status_code == 413
    assert inbox.events_after(0, 10) == []


def test_backlog_over_its_limit_is_429_with_retry_after(serve):
    url, inbox = serve(max_backlog=2)
    assert post(url, "tigris", payload("tigris-documented.json")).status_code == 200
    response = post(url, "s3", payload("s3-records.json"))
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert len(inbox.events_after(0, 10)) == 2


def test_unavailable_inbox_is_503_so_the_sender_retries(serve):
    with throwaway_postgres() as pg_url:
        url, _ = serve(inbox=Inbox(pg_url))
        assert post(url, "tigris", payload("tigris-blog-flat.json")).status_code == 200
    response = post(url, "tigris", payload("tigris-documented.json"))
    assert response.status_code == 503
    assert "Retry-After" in response.headers
    assert httpx.get(f"{url}/healthz").status_code == 503


def test_probes_health_metrics_and_docs(serve):
    url, _ = serve()
    for source in ("tigris", "seaweedfs", "s3"):
        assert httpx.head(f"{url}/webhooks/{source}").status_code == 200
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    post(url, "tigris", payload("tigris-documented.json"))
    post(url, "tigris", payload("tigris-documented.json"))
    httpx.post(f"{url}/webhooks/tigris", content=b"{}")
    metrics = httpx.get(f"{url}/metrics").text
    assert 'mediasift_events_received_total{source="tigris"} 2.0' in metrics
    assert 'mediasift_events_duplicate_total{source="tigris"} 2.0' in metrics
    assert 'mediasift_requests_rejected_total{reason="unauthorized",source="tigris"} 1.0' in metrics
    assert "mediasift_inbox_depth 1.0" in metrics  # the created object; the deleted one waits for nothing
    assert 'mediasift_versions{state="deleted"} 1.0' in metrics
    assert "mediasift_inbox_commit_requests_sum 2.0" in metrics, "two committed POSTs, the refused one not"
    assert "mediasift_inbox_commit_seconds_count" in metrics
    paths = httpx.get(f"{url}/openapi.json").json()["paths"]
    assert {"/webhooks/tigris", "/webhooks/seaweedfs", "/webhooks/s3", "/healthz", "/metrics"} <= set(paths)
    assert httpx.get(f"{url}/docs").status_code == 200


def test_own_derived_prefix_is_ignored(serve):
    url, inbox = serve()
    body = {"eventType": "OBJECT_CREATED_PUT", "bucket": "media", "key": "_mediasift/tables/x.parquet", "etag": "1"}
    assert post(url, "tigris", json.dumps(body).encode()).json()["ignored"] == 1
    assert inbox.events_after(0, 10) == []


def test_sns_subscription_is_confirmed_and_test_events_accepted(serve):
    visits = []

    class Confirm(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            visits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    sns = HTTPServer((LOOPBACK, free_port()), Confirm)
    threading.Thread(target=sns.serve_forever, daemon=True).start()
    try:
        url, inbox = serve(sns_confirm_host_suffix=LOOPBACK, sns_verify_signatures=False)  # signed: test_sns_signature
        body = json.loads(payload("sns-subscription.json"))
        body["SubscribeURL"] = f"http://{LOOPBACK}:{sns.server_port}/?Action=ConfirmSubscription&Token=tok"
        response = post(url, "s3", json.dumps(body).encode(), {"x-amz-sns-message-type": "SubscriptionConfirmation"})
        assert response.status_code == 200
        assert visits == ["/?Action=ConfirmSubscription&Token=tok"]
        body["SubscribeURL"] = "http://169.254.169.254/latest/meta-data"
        refused = post(url, "s3", json.dumps(body).encode(), {"x-amz-sns-message-type": "SubscriptionConfirmation"})
        assert refused.status_code == 400 and len(visits) == 1
        assert post(url, "s3", payload("s3-test-event.json")).json()["ignored"] == 1
        notification = post(url, "s3", payload("sns-notification.json"), {"x-amz-sns-message-type": "Notification"})
        assert notification.json()["accepted"] == 1
        assert [e.key for e in inbox.events_after(0, 10)] == ["videos/red flower.mp4"]
    finally:
        sns.shutdown()


def test_concurrent_posts_with_repeats_are_each_answered_and_stored_once(serve):
    url, inbox = serve()
    bodies = [json.dumps({"eventType": "OBJECT_CREATED_PUT", "bucket": "media", "key": f"k{i}.jpg", "etag": f"e{i}"})
              .encode() for i in range(40)]

    async def post_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            return await asyncio.gather(*(client.post("/webhooks/tigris", content=body) for body in bodies * 3))

    responses = asyncio.run(post_all())
    assert {r.status_code for r in responses} == {200}
    assert sum(r.json()["accepted"] for r in responses) == 40
    assert sum(r.json()["duplicates"] for r in responses) == 80
    assert sorted(e.key for e in inbox.events_after(0, 1000)) == sorted(f"k{i}.jpg" for i in range(40))


def test_openapi_describes_each_webhook_with_its_auth_and_answers(serve):
    url, _ = serve()
    schema = httpx.get(f"{url}/openapi.json").json()
    for source in ("tigris", "seaweedfs", "s3"):
        operation = schema["paths"][f"/webhooks/{source}"]["post"]
        assert {"200", "400", "401", "413", "429", "503"} <= set(operation["responses"])
        assert operation["requestBody"]["content"]["application/json"]
        assert operation["security"] == [{"bearer": []}]
    assert schema["components"]["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}
    assert set(schema["components"]["schemas"]["WebhookAnswer"]["properties"]) == {"accepted", "duplicates", "ignored"}


def test_webhook_behind_a_root_path_is_served_by_the_ordinary_route(tmp_path):
    app = create_app(Settings(home=tmp_path, webhook_token=TOKEN))
    with TestClient(app, root_path="/ingest") as client:
        response = client.post("/ingest/webhooks/tigris", content=payload("tigris-documented.json"),
                               headers={"Authorization": f"Bearer {TOKEN}"})
        unauthenticated = client.post("/ingest/webhooks/tigris", content=payload("tigris-documented.json"))
    assert response.status_code == 200
    assert response.json() == {"accepted": 2, "duplicates": 0, "ignored": 0}
    assert unauthenticated.status_code == 401
    assert len(app.state.inbox.events_after(0, 10)) == 2
