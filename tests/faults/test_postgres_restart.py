"""Postgres restarted under a running receiver (the production layout: a Postgres inbox behind the
receiver over HTTP): while the database is down every webhook is answered 503 with Retry-After and nothing
is written; once it is back the receiver serves again without a restart of its own, and after the senders
retry what was refused, every notification is in the inbox exactly once."""

import json

import httpx
import pytest
from sqlalchemy import create_engine, text

from mediasift.config import Settings
from mediasift.inbox import Inbox
from mediasift.intake.receiver import ReceiverServer, create_app
from mediasift.local.postgres import throwaway_postgres_server
from mediasift.local.processes import LOOPBACK, free_port
from tests.helpers import events_for

TOKEN = "restart-test-token"


def notification(i: int) -> bytes:
    return json.dumps({"events": [{"eventVersion": "1", "eventSource": "tigris", "eventName": "OBJECT_CREATED_PUT",
                                   "eventTime": f"2026-12-01T12:00:{i:02d}.000Z", "bucket": "media",
                                   "object": {"key": f"restart/{i:02d}.bin", "size": 10 + i,
                                              "eTag": f"{i:032x}"}}]}).encode()


@pytest.mark.postgres
def test_postgres_down_answers_503_and_nothing_is_lost_after_it_is_back(tmp_path):
    with throwaway_postgres_server() as postgres:
        admin = create_engine(postgres.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE restart_inbox"))
        admin.dispose()
        url = postgres.url.rsplit("/", 1)[0] + "/restart_inbox"
        inbox = Inbox(url)
        server = ReceiverServer(create_app(Settings(home=tmp_path, database_url=url, webhook_token=TOKEN), inbox),
                                LOOPBACK, free_port()).start()
        try:
            with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as http:
                def post(i: int) -> httpx.Response:
                    return http.post("/webhooks/tigris", content=notification(i))

                assert [post(i).status_code for i in range(10)] == [200] * 10
                postgres.stop()
                down = [post(i) for i in range(10, 20)]
                assert {r.status_code for r in down} == {503}
                assert all(r.headers.get("Retry-After") for r in down)
                assert http.get("/healthz").status_code == 503
                postgres.start()
                assert http.get("/healthz").status_code == 200
                retried = [post(i) for i in range(10, 30)]
                assert [(r.status_code, r.json()["accepted"]) for r in retried] == [(200, 1)] * 20, \
                    "the refused ones, retried, are new: nothing of them was written while the database was down"
                assert [post(i).json()["duplicates"] for i in range(5)] == [1] * 5
            stored = events_for(inbox, "media")
            assert sorted(e.key for e in stored) == [f"restart/{i:02d}.bin" for i in range(30)]
        finally:
            server.stop()
            inbox.close()
