"""Fuzzing the receiver in-process: schemathesis over its own OpenAPI description, then hypothesis-made webhook
bodies (arbitrary JSON and mutated reference payloads). Whatever arrives, the answer is never a 5xx, a refusal
names the offending field, and the inbox is never left with a partial write: a refused request writes nothing,
a committed one writes exactly the events it reports, and every event row has its version row.

The schemathesis app is built at import, since the schema must exist when the test is parametrized
(`schemathesis.pytest.from_fixture` fails on this pytest: "'Function' object has no attribute '_nodeid'").
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import schemathesis
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import positive_data_acceptance, status_code_conformance
from sqlalchemy import distinct, func, select
from starlette.testclient import TestClient

from mediasift.config import Settings
from mediasift.inbox import Inbox, events_table, versions_table
from mediasift.intake.events import EventKind, NotificationEvent, Source
from mediasift.intake.parsers import parse_notification
from mediasift.intake.receiver import create_app
from tests.conftest import payload
from tests.fuzz.test_parsers import (
    FUZZ,
    encode,
    etag_not_utf8,
    examples,
    grounded,
    json_values,
    misnamed_rename,
    mutated_payloads,
    names_the_mutated_field,
    path_text,
)

TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BODY_LIMIT = 65_536
NO_SNS_HOST = ".NEVER-AN-SNS-HOST"
"""SubscribeURL hosts must end with this to be visited; urlsplit lower-cases hostnames, so none ever does: a
fuzzed SubscriptionConfirmation is refused (400) instead of making the test reach out to the network."""


def receiver_settings(home: Path) -> Settings:
    """SNS signatures unchecked: a mutated envelope could never verify, and the parsers behind the check are what
    is fuzzed here (signature checks: tests/unit/test_sns_signature.py)."""
    return Settings(home=home, webhook_token=TOKEN, max_body_bytes=BODY_LIMIT, sns_confirm_host_suffix=NO_SNS_HOST,
                    sns_verify_signatures=False, lance_uri=str(home / "lance"), derived_dir=home / "derived")


def table_counts(inbox: Inbox) -> tuple[int, int]:
    with inbox.engine.connect() as conn:
        return (conn.execute(select(func.count()).select_from(events_table)).scalar_one(),
                conn.execute(select(func.count()).select_from(versions_table)).scalar_one())


def assert_no_partial_write(inbox: Inbox) -> None:
    """Every event row has its version row, every version row was introduced by an event of its own, and so
    there are exactly as many versions as distinct versions among the events."""
    e, v = events_table.c, versions_table.c
    with inbox.engine.connect() as conn:
        orphan_events = conn.execute(select(func.count()).select_from(events_table.outerjoin(
            versions_table, e.version_hash == v.version_hash)).where(v.version_hash.is_(None))).scalar_one()
        unintroduced = conn.execute(select(func.count()).select_from(versions_table.outerjoin(
            events_table, (e.seq == v.first_seq) & (e.version_hash == v.version_hash))).where(e.seq.is_(None))
        ).scalar_one()
        distinct_versions = conn.execute(select(func.count(distinct(e.version_hash)))).scalar_one()
        versions = conn.execute(select(func.count()).select_from(versions_table)).scalar_one()
    assert (orphan_events, unintroduced, distinct_versions) == (0, 0, versions)


SCHEMA_HOME = Path(tempfile.mkdtemp(prefix="mediasift-fuzz-api-"))
SCHEMA_INBOX = Inbox(f"sqlite:///{SCHEMA_HOME / 'inbox.db'}")
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(receiver_settings(SCHEMA_HOME), SCHEMA_INBOX))


@pytest.fixture(scope="module", autouse=True)
def _schema_app_cleanup():
    """End the app lifespan schemathesis started (it stops the inbox writer), then remove that inbox."""
    yield
    shutdown_lifespans()
    SCHEMA_INBOX.close()
    shutil.rmtree(SCHEMA_HOME, ignore_errors=True)


@schema.parametrize()
@settings(FUZZ, max_examples=examples(25))
def test_no_request_gets_a_server_error_an_undocumented_answer_or_a_partial_write(case):
    """All of schemathesis's checks (no 5xx, documented status, content type, headers and body schema, negative
    data rejected, auth enforced), except positive_data_acceptance on the webhooks, whose body schema is any
    object on purpose (the three forms are described in prose and enforced by the parsers, with a 400 naming
    the field), and on the read endpoints' documented refusals of data no schema can rule out."""
    webhook = case.path.startswith("/webhooks/")
    headers = AUTH if webhook else None
    before = table_counts(SCHEMA_INBOX)
    response = case.call(headers=headers)
    after = table_counts(SCHEMA_INBOX)
    excluded = [positive_data_acceptance] if webhook else []
    if _refused_by_design(case, response):
        excluded.append(positive_data_acceptance)
    case.validate_response(response, headers=headers, excluded_checks=excluded,
                           transport_kwargs={"headers": dict(headers)} if headers else None)
    assert_no_partial_write(SCHEMA_INBOX)
    if webhook and response.status_code == 200 and "accepted" in response.json():
        assert after[0] - before[0] == response.json()["accepted"]
    else:
        assert after == before


def _refused_by_design(case, response) -> bool:
    """GET /search's 400 for a layer that does not exist and GET /objects' 404 for an object no one has seen:
    documented answers to data the schema cannot call invalid (any string is a layer name or a key there)."""
    if case.method.upper() != "GET":
        return False
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return False
    if not isinstance(detail, str):
        return False
    if case.path == "/search":
        return response.status_code == 400 and detail.startswith("layer: unknown")
    return case.path.startswith("/objects/") and response.status_code == 404 and detail.startswith("no version of")


def test_search_refusing_an_unknown_layer_answers_a_documented_status():
    case = schema["/search"]["GET"].Case(query={"q": "cat", "layer": ["no-such-layer"]})
    case.call_and_validate(checks=[status_code_conformance])


def test_unknown_object_answers_a_documented_status():
    case = schema["/objects/{bucket}/{key}"]["GET"].Case(path_parameters={"bucket": "media", "key": "nothing.mp4"})
    case.call_and_validate(checks=[status_code_conformance])


def test_object_whose_key_holds_a_newline_is_found():
    SCHEMA_INBOX.append([NotificationEvent(Source.S3, EventKind.CREATED, "media", "line\nbreak.txt", "e1")])
    response = TestClient(schema.app).get("/objects/media/line%0Abreak.txt")  # no lifespan: the writer stays up
    assert (response.status_code, response.json().get("key")) == (200, "line\nbreak.txt"), response.text


Post = Callable[..., object]


@contextmanager
def receiver(home: Path) -> Iterator[Post]:
    """A receiver of its own (inbox on a fresh SQLite file) and a function that POSTs a body to it, authenticated,
    and checks what the request did: never a 5xx; 200, 400 or (past the body limit) 413; a refusal writes
    nothing; a 200 writes the events it counts as accepted, and counts every event of the body."""
    inbox = Inbox(f"sqlite:///{home / 'inbox.db'}")
    with TestClient(create_app(receiver_settings(home), inbox), raise_server_exceptions=False) as client:
        def post(source: Source, body: bytes, headers: dict | None = None):
            before = table_counts(inbox)
            response = client.post(f"/webhooks/{source.value}", content=body, headers={**AUTH, **(headers or {})})
            after = table_counts(inbox)
            assert response.status_code < 500, (response.status_code, response.text, body[:300])
            assert_no_partial_write(inbox)
            if response.status_code == 200 and "accepted" in response.json():
                answer = response.json()
                assert after[0] - before[0] == answer["accepted"]
                parsed = parse_notification(source, body, headers)
                assert answer["accepted"] + answer["duplicates"] + answer["ignored"] == (
                    len(parsed.events) + parsed.ignored)
            else:
                assert after == before
            if response.status_code == 413:
                assert len(body) > BODY_LIMIT
            else:
                assert response.status_code in (200, 400), (response.status_code, response.text)
            return response

        yield post
    inbox.close()


@pytest.fixture(scope="module")
def webhook(tmp_path_factory) -> Iterator[Post]:
    with receiver(tmp_path_factory.mktemp("webhook-fuzz")) as post:
        yield post


def detail_field(detail: str, doc) -> str | None:
    """The field a 400's `detail` ("<field>: <message>") names: the longest prefix before a ': ' that is a place
    in the body (a fuzzed key may itself hold ': ')."""
    candidates = [detail[:i] for i in range(len(detail)) if detail.startswith(": ", i)]
    placed = [c for c in candidates if grounded(c, doc)]
    return max(placed, key=len) if placed else None


WEBHOOKS = [Source.TIGRIS, Source.SEAWEEDFS, Source.S3]


@pytest.mark.parametrize("source", WEBHOOKS)
@settings(FUZZ, max_examples=examples(60))
@given(doc=json_values, raw=st.none() | st.binary(max_size=200), escaped=st.booleans())
def test_any_body_is_answered_2xx_or_4xx_and_a_400_names_a_place_in_it(webhook, source, doc, raw, escaped):
    body = raw if raw is not None else encode(doc, escaped)
    response = webhook(source, body)
    if response.status_code == 400:
        detail = response.json()["detail"]
        if raw is None:
            assert detail_field(detail, doc), (detail, doc)
        else:
            assert detail.startswith("body: ") or detail_field(detail, json.loads(raw)), detail


@pytest.mark.parametrize("source", WEBHOOKS)
@settings(FUZZ, max_examples=examples(80))
@given(data=st.data(), escaped=st.booleans())
def test_mutated_reference_payload_is_answered_2xx_or_4xx_and_a_400_names_the_changed_field(webhook, source, data,
                                                                                              escaped):
    """Dropped and retyped fields, huge strings (some past the body limit: 413), unicode, `..` and 1,000-character
    keys, in every reference body but the SNS SubscriptionConfirmation (confirming it means a GET to its URL)."""
    name, headers, doc, parts = data.draw(mutated_payloads(source, exclude=("sns-subscription.json",)))
    assume(not misnamed_rename(source, doc) and not etag_not_utf8(source, doc))
    response = webhook(source, encode(doc, escaped), headers)
    if response.status_code == 400:
        detail = response.json()["detail"]
        field = detail_field(detail, doc)
        assert field and names_the_mutated_field(field, source, doc, parts), (name, path_text(parts), detail)


def test_reference_payloads_are_committed_once_and_absorbed_when_redelivered(tmp_path):
    """The fuzzing above is only worth something if good bodies get through: each reference body commits its
    events on first delivery and is absorbed as duplicates on the second."""
    with receiver(tmp_path) as post:
        for source, name, headers in [(Source.TIGRIS, "tigris-documented.json", {}),
                                      (Source.SEAWEEDFS, "seaweedfs-multipart-create.json", {}),
                                      (Source.S3, "sns-notification.json", {"x-amz-sns-message-type": "Notification"})]:
            first, again = post(source, payload(name), headers).json(), post(source, payload(name), headers).json()
            assert first["accepted"] >= 1 and first["duplicates"] == 0
            assert (again["accepted"], again["duplicates"]) == (0, first["accepted"])


@pytest.mark.parametrize(("source", "body", "field"), [
    (Source.TIGRIS, {"eventType": "OBJECT_CREATED_PUT", "bucket": "b", "key": "k", "etag": "e", "size": 2**63},
     "size"),
    (Source.S3, {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {
        "key": "k", "eTag": "e", "size": 2**63}}}]}, "Records[0].s3.object.size"),
    (Source.SEAWEEDFS, {"event_type": "create", "key": "/buckets/b/k", "message": {"new_entry": {
        "name": "k", "attributes": {"file_size": 2**63, "md5": "MWW+2eOchCFyCdbsq4RBxw=="}}}},
     "message.new_entry.attributes.file_size"),
], ids=["tigris", "s3", "seaweedfs"])
def test_size_past_64_bits_is_refused_naming_the_size(webhook, source, body, field):
    response = webhook(source, json.dumps(body).encode())
    assert response.status_code == 400 and response.json()["detail"].startswith(f"{field}: ")


@pytest.mark.parametrize(("source", "body"), [
    (Source.TIGRIS, b"[" * 1_000),
    (Source.S3, b'{"Records": [{"s3": {"object": {"size": ' + b"9" * 4_301 + b"}}}]}"),
    (Source.SEAWEEDFS, json.dumps({"event_type": "create", "key": "/buckets/b/k", "message": {
        "new_entry": {"name": "k", "extended": {"Seaweed-X-Amz-ETag": "/w=="}}}}).encode()),
], ids=["nesting", "digits", "etag-not-utf8"])
def test_malformed_body_is_refused_with_400(webhook, source, body):
    assert webhook(source, body).status_code == 400
