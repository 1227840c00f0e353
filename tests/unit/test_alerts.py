"""Outgoing alerts against a real local HTTP server and the inbox's real database (SQLite and Postgres):
retried on 503 with the same idempotency id, not retried on a 400, and sent once however often it is
asked for, across senders sharing the database."""

import socket

import pytest

from mediasift.analysis.alerts import CLAIM_SECONDS, AlertLedger, AlertSender
from mediasift.identity import ObjectVersion
from tests.helpers import RecordingServer

VERSION = ObjectVersion("media", "contracts/signed by Ada.pdf", "0a1b2c", None)
FLAG = {"rule": "pii-person", "reason": "rule:pii-person: PERSON 'Ada Lovelace' on page 1", "id": "f" * 64,
        "at": "2026-12-01T12:00:00+00:00"}


def sender(url: str, inbox, **options) -> AlertSender:
    return AlertSender(url, AlertLedger(inbox.engine), "alert-secret", sleep=lambda _: None, **options)


def test_a_503_is_retried_under_the_same_idempotency_id_and_the_body_names_the_version(inbox):
    with RecordingServer([503, 503]) as server:
        outcomes = sender(server.url, inbox).send(VERSION, [FLAG])
    assert [(o.sent, o.attempts, o.status_code) for o in outcomes] == [(True, 3, 200)]
    assert [r["headers"]["Idempotency-Key"] for r in server.requests] == [FLAG["id"]] * 3
    assert server.requests[0]["headers"]["Authorization"] == "Bearer alert-secret"
    body = server.requests[0]["body"]
    assert (body["id"], body["rule"], body["reason"]) == (FLAG["id"], FLAG["rule"], FLAG["reason"])
    assert (body["object"]["bucket"], body["object"]["key"], body["object"]["etag"]) == (
        VERSION.bucket, VERSION.key, VERSION.etag)
    assert [(r["state"], r["attempts"]) for r in AlertLedger(inbox.engine).rows()] == [("sent", 3)]


def test_a_400_is_final_and_a_later_run_may_claim_the_failed_alert_again(inbox):
    with RecordingServer([400]) as server:
        first = sender(server.url, inbox).send(VERSION, [FLAG])
        assert [(o.sent, o.attempts, o.error) for o in first] == [(False, 1, "HTTP 400")]
        assert AlertLedger(inbox.engine).rows()[0]["state"] == "failed"
        again = sender(server.url, inbox).send(VERSION, [FLAG])
    assert [o.sent for o in again] == [True]
    assert len(server.requests) == 2


def test_an_alert_is_sent_once_however_many_senders_are_asked(inbox):
    with RecordingServer() as server:
        for _ in range(3):
            sender(server.url, inbox).send(VERSION, [FLAG])
    assert len(server.requests) == 1


def test_a_claim_left_by_a_dead_sender_expires_and_the_alert_goes_again(inbox):
    ledger = AlertLedger(inbox.engine)
    assert ledger.claim(FLAG["id"], VERSION.version_hash, FLAG["rule"], now=1000.0)
    assert not ledger.claim(FLAG["id"], VERSION.version_hash, FLAG["rule"], now=1000.0 + CLAIM_SECONDS / 2)
    assert ledger.claim(FLAG["id"], VERSION.version_hash, FLAG["rule"], now=1000.0 + CLAIM_SECONDS + 1)


def test_an_unreachable_webhook_is_retried_then_recorded_as_failed(inbox):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    outcomes = sender(f"http://127.0.0.1:{port}/alerts", inbox, max_attempts=3, timeout=2).send(VERSION, [FLAG])
    assert [(o.sent, o.attempts) for o in outcomes] == [(False, 3)]
    assert outcomes[0].error.startswith("ConnectError")
    row = AlertLedger(inbox.engine).rows()[0]
    assert (row["state"], row["attempts"]) == ("failed", 3)


@pytest.mark.parametrize("url", [None, ""])
def test_no_webhook_configured_means_no_sender(url, inbox):
    from mediasift.config import Settings

    assert AlertSender.from_settings(Settings(alert_webhook_url=url), inbox.engine) is None
