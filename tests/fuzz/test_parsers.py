"""Property tests for the notification parsers: whatever a sender posts, the parser answers with events or with a
PayloadError that names the bad field, never with another exception; well-formed bodies carry any S3 key through
unchanged and map event names to kinds as DESIGN §3 documents.

The helpers at the top (JSON and mutation strategies, field checks) are shared with test_receiver_api.py.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import re
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mediasift.errors import PayloadError
from mediasift.intake.events import EventKind, NotificationEvent, Parsed, Source, load_json
from mediasift.intake.parsers import parse_notification, tigris
from tests.conftest import payload

settings.register_profile("fuzz", deadline=None, database=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                 HealthCheck.filter_too_much])
FUZZ = settings.get_profile("fuzz")
SCALE = float(os.environ.get("MEDIASIFT_FUZZ_SCALE", "1"))
"""Multiplies every example count here, for a deeper run by hand (`MEDIASIFT_FUZZ_SCALE=20 pytest tests/fuzz`)."""


def examples(n: int) -> int:
    return max(1, int(n * SCALE))


scalars = (st.none() | st.booleans() | st.integers() | st.integers(2**63 - 2, 2**63 + 2)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30))
"""JSON scalars, integers past 64 bits among them (a size must be under 2**63). Nesting stays shallow here:
bodies nested past the recursion limit and integer literals past the digit limit have tests of their own."""
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=20)

TRICKY_STRINGS = ["", " ", "..", "../../etc/passwd", "%2F", "a+b", "a%20b", "\x00", "\n", "é" * 10, "🦆", "k" * 1000,
                  "/buckets/.system/x", ".uploads/part", "x.versions/v_1"]
TRICKY_KEYS = ["..", "", "ключ", "🦆 key", "a.b[0]", "k" * 1000, "eTag", "size", "Seaweed-X-Amz-ETag"]

TIGRIS_PAYLOADS = [("tigris-documented.json", {}), ("tigris-blog-flat.json", {}), ("tigris-all-events.json", {})]
SEAWEEDFS_PAYLOADS = [(f"seaweedfs-{name}.json", {}) for name in (
    "create", "delete", "multipart-create", "update", "rename", "versioned", "directory", "upload-part", "system")]
S3_PAYLOADS = [("s3-records.json", {}), ("minio-put.json", {}), ("s3-test-event.json", {}),
               ("sns-notification.json", {"x-amz-sns-message-type": "Notification"}),
               ("sns-notification.json", {}),
               ("sns-subscription.json", {"x-amz-sns-message-type": "SubscriptionConfirmation"})]
PAYLOADS = {Source.TIGRIS: TIGRIS_PAYLOADS, Source.SEAWEEDFS: SEAWEEDFS_PAYLOADS, Source.S3: S3_PAYLOADS}
FORM_FIELDS = {
    Source.TIGRIS: {("events",)},
    Source.SEAWEEDFS: {("event_type",), ("key",), ("message", "new_entry", "is_directory"),
                       ("message", "old_entry", "is_directory")},
    Source.S3: {("Records",), ("Type",)},
}
"""Fields that decide how the rest of a body is read: break one and another field may become the offending one
(a Tigris body without `events` is read as the flat form and needs `eventType`; a SeaweedFS entry that is no
longer a directory needs an ETag)."""


def path_text(parts: tuple) -> str:
    """A location in a body, written as PayloadError.field writes it: `events[0].object.key`; the root is ''."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def nodes(doc, parts: tuple = ()):
    """(path parts, value) of every node; an SNS `Message` holding JSON is walked into, as its parser does."""
    yield parts, doc
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from nodes(value, (*parts, key))
        if parts == () and isinstance(doc.get("Message"), str):
            try:
                inner = json.loads(doc["Message"])
            except ValueError:
                return
            for inner_parts, value in nodes(inner):
                if inner_parts:
                    yield ("Message", *inner_parts), value
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from nodes(value, (*parts, index))


def grounded(field: str, doc) -> bool:
    """Whether `field` is a place in `doc`: a node of it, or a missing member under one of its objects (perhaps
    inside a missing object: `message.new_entry.extended.Seaweed-X-Amz-ETag` of an entry without `extended`)."""
    if field == "body":
        return True
    places = list(nodes(doc))
    if field in {path_text(parts) for parts, _ in places}:
        return True
    objects = {path_text(parts) for parts, value in places if isinstance(value, dict)}
    while "." in field:
        field = field.rsplit(".", 1)[0]
        if field in objects:
            return True
    return "" in objects


def related(field: str, mutated: str) -> bool:
    """`field` is the mutated place, inside it, or contains it."""
    field = "" if field == "body" else field

    def within(inner: str, outer: str) -> bool:
        return outer == "" or inner == outer or inner.startswith((f"{outer}.", f"{outer}["))

    return within(field, mutated) or within(mutated, field)


def names_the_mutated_field(field: str, source: Source, doc, mutated_parts: tuple) -> bool:
    """A refusal of a body changed at `mutated_parts` names that place (or one inside it, or one containing it),
    or, when the change was to a field that decides the body's form, some place of the body."""
    mutated = path_text(mutated_parts)
    if related(field, mutated):
        return True
    return mutated_parts in FORM_FIELDS[source] and grounded(field, doc)


def _get(doc, parts: tuple):
    for part in parts:
        doc = doc[part]
    return doc


def _set(doc, parts: tuple, value):
    if not parts:
        return value
    target = doc
    for part in parts[:-1]:
        target = target[part]
    target[parts[-1]] = value
    return doc


def _drop(doc, parts: tuple):
    target = doc
    for part in parts[:-1]:
        target = target[part]
    del target[parts[-1]]
    return doc


@st.composite
def mutation(draw, doc):
    """One change to a copy of `doc`: a member dropped, a value replaced (other types, huge or tricky strings), or
    a member added under an odd key. Returns (changed document, path parts of the change)."""
    doc = copy.deepcopy(doc)
    message = doc.get("Message") if isinstance(doc, dict) else None
    if isinstance(message, str) and message.startswith("{") and draw(st.booleans()):
        inner, parts = draw(mutation(json.loads(message)))
        doc["Message"] = json.dumps(inner)
        return doc, ("Message", *parts)
    places = [parts for parts, _ in nodes(doc) if not (parts and parts[0] == "Message" and len(parts) > 1)]
    parts = draw(st.sampled_from(places))
    value = _get(doc, parts)
    ops = ["replace", "huge", "tricky"] + (["drop"] if parts else []) + (["add"] if isinstance(value, dict) else [])
    op = draw(st.sampled_from(ops))
    if op == "drop":
        return _drop(doc, parts), parts
    if op == "add":
        key = draw(st.sampled_from(TRICKY_KEYS) | st.text(min_size=1, max_size=20))
        assume(key not in value)
        value[key] = draw(json_values)
        return doc, (*parts, key)
    if op == "huge":
        replacement = draw(st.sampled_from("xé🦆%/")) * draw(st.integers(1_000, 20_000))
    elif op == "tricky":
        replacement = draw(st.sampled_from(TRICKY_STRINGS))
    else:
        replacement = draw(json_values)
    return _set(doc, parts, replacement), parts


@st.composite
def mutated_payloads(draw, source: Source, exclude: tuple[str, ...] = ()):
    """(file name, headers, mutated document, path parts of the mutation) from the reference payloads."""
    name, headers = draw(st.sampled_from([p for p in PAYLOADS[source] if p[0] not in exclude]))
    doc, parts = draw(mutation(json.loads(payload(name))))
    return name, headers, doc, parts


def misnamed_rename(source: Source, doc) -> bool:
    """A SeaweedFS rename without `message.new_entry`, which was refused naming `message.new_parent_path`
    (fixed: test_rename_without_new_entry_names_new_entry). The parser tests here no longer steer around it;
    test_receiver_api.py still imports this for its own `assume`."""
    if source is not Source.SEAWEEDFS or not isinstance(doc, dict) or doc.get("event_type") != "rename":
        return False
    message = doc.get("message")
    return isinstance(message, dict) and message.get("new_entry") is None


def etag_not_utf8(source: Source, doc) -> bool:
    """A SeaweedFS ETag whose base64 decodes to bytes that are not UTF-8, which raised UnicodeDecodeError
    (fixed: test_seaweedfs_etag_that_is_not_utf8_is_a_payload_error). The parser tests here no longer steer
    around it; test_receiver_api.py still imports this for its own `assume`."""
    if source is not Source.SEAWEEDFS:
        return False
    for parts, value in nodes(doc):
        if parts and parts[-1] == "Seaweed-X-Amz-ETag" and isinstance(value, str):
            try:
                base64.b64decode(value, validate=True).decode()
            except UnicodeDecodeError:
                return True
            except ValueError:
                pass
    return False


def encode(doc, escaped: bool) -> bytes:
    """A body as a sender writes it: non-ASCII as `\\u` escapes, or as raw UTF-8."""
    return json.dumps(doc, ensure_ascii=escaped).encode()


def parse_or_payload_error(source: Source, body: bytes, headers: dict | None = None) -> Parsed | PayloadError:
    """The parser's answer; any exception but PayloadError fails the test."""
    try:
        parsed = parse_notification(source, body, headers)
    except PayloadError as error:
        return error
    assert isinstance(parsed, Parsed)
    for event in parsed.events:
        assert isinstance(event, NotificationEvent) and event.source is source
        assert event.kind in (EventKind.CREATED, EventKind.DELETED)
        assert event.bucket and event.key
    return parsed


sources = st.sampled_from([Source.TIGRIS, Source.SEAWEEDFS, Source.S3])
sns_headers = st.sampled_from([None, {"x-amz-sns-message-type": "Notification"},
                               {"x-amz-sns-message-type": "SubscriptionConfirmation"},
                               {"X-Amz-Sns-Message-Type": "UnsubscribeConfirmation"}])


@settings(FUZZ, max_examples=examples(200))
@given(source=sources, body=st.binary(max_size=300) | st.text(max_size=100).map(str.encode), headers=sns_headers)
def test_arbitrary_bytes_are_parsed_or_refused_with_a_payload_error(source, body, headers):
    parse_or_payload_error(source, body, headers)


@settings(FUZZ, max_examples=examples(200))
@given(source=sources, doc=json_values, headers=sns_headers, escaped=st.booleans())
def test_arbitrary_json_is_parsed_or_refused_naming_a_place_in_the_body(source, doc, headers, escaped):
    answer = parse_or_payload_error(source, encode(doc, escaped), headers)
    if isinstance(answer, PayloadError):
        assert grounded(answer.field, doc), (answer.field, doc)


@pytest.mark.parametrize("source", [Source.TIGRIS, Source.SEAWEEDFS, Source.S3])
@settings(FUZZ, max_examples=examples(150))
@given(data=st.data(), escaped=st.booleans())
def test_mutated_reference_payload_is_parsed_or_refused_naming_the_changed_field(source, data, escaped):
    name, headers, doc, parts = data.draw(mutated_payloads(source))
    answer = parse_or_payload_error(source, encode(doc, escaped), headers)
    if isinstance(answer, PayloadError):
        assert names_the_mutated_field(answer.field, source, doc, parts), (name, path_text(parts), answer.field)


s3_keys = st.sampled_from(TRICKY_STRINGS[1:] + ["a b", "100% sure+.txt", "dir/sub dir/ü+é.jpg", "%41", "a%2Fb"]) | (
    st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=80))
"""Any S3 key: unicode, spaces, `+`, `%`, `..`, control characters, 1,000 characters (no lone surrogates: they are
not text that UTF-8 or JSON can carry)."""
buckets = st.from_regex(r"[a-z0-9][a-z0-9.-]{1,20}[a-z0-9]", fullmatch=True)
etags = st.binary(min_size=16, max_size=16).map(bytes.hex) | st.tuples(
    st.binary(min_size=16, max_size=16), st.integers(2, 10_000)).map(lambda t: f"{t[0].hex()}-{t[1]}")
S3_NAMES = {"ObjectCreated:Put": EventKind.CREATED, "ObjectCreated:Post": EventKind.CREATED,
            "ObjectCreated:Copy": EventKind.CREATED, "ObjectCreated:CompleteMultipartUpload": EventKind.CREATED,
            "ObjectRemoved:Delete": EventKind.DELETED, "ObjectRemoved:DeleteMarkerCreated": EventKind.DELETED,
            "LifecycleExpiration:Delete": EventKind.DELETED, "ObjectTagging:Put": None,
            "ObjectRestore:Completed": None, "Replication:OperationFailedReplication": None}


@settings(FUZZ, max_examples=examples(150))
@given(key=s3_keys, bucket=buckets, etag=etags, name=st.sampled_from(sorted(S3_NAMES)), minio=st.booleans(),
       safe=st.sampled_from(["/", ""]), wrapper=st.sampled_from(["records", "sns", "minio"]),
       version_id=st.none() | st.text("abcdefXYZ0189._", min_size=1, max_size=32))
def test_s3_record_keeps_any_url_encoded_key_and_maps_its_event_name(key, bucket, etag, name, minio, safe, wrapper,
                                                                     version_id):
    record = json.loads(payload("s3-records.json"))["Records"][0]
    record["eventName"] = f"s3:{name}" if minio else name
    record["s3"]["bucket"]["name"] = bucket
    record["s3"]["object"].update(key=quote_plus(key, safe=safe), eTag=f'"{etag.upper()}"', versionId=version_id)
    body, headers = {"Records": [record]}, {}
    if wrapper == "sns":
        body = {"Type": "Notification", "Message": json.dumps(body)}
        headers = {"x-amz-sns-message-type": "Notification"}
    elif wrapper == "minio":
        body = {"EventName": record["eventName"], "Key": f"{bucket}/{quote_plus(key, safe='')}", **body}
    parsed = parse_notification(Source.S3, json.dumps(body).encode(), headers)
    if S3_NAMES[name] is None:
        assert (parsed.events, parsed.ignored) == ([], 1)
        return
    (event,) = parsed.events
    assert (event.kind, event.bucket, event.key, event.etag, event.version_id) == (
        S3_NAMES[name], bucket, key, etag.lower(), version_id)


TIGRIS_NAMES = {"OBJECT_CREATED_PUT": EventKind.CREATED, "OBJECT_CREATED_MULTIPART": EventKind.CREATED,
                "OBJECT_CREATED_COPY": EventKind.CREATED, "OBJECT_RENAME": EventKind.CREATED,
                "OBJECT_DELETED": EventKind.DELETED, "OBJECT_TRANSITIONED": None, "OBJECT_SOMETHING_NEW": None}
ENCODED = re.compile(r"%[0-9A-Fa-f]{2}")


def looks_encoded(key: str) -> bool:
    """The documented rule for Tigris keys (whose encoding Tigris does not document): `%XX` escapes and nothing an
    encoder would have escaped (non-ASCII, a space) mean encoded."""
    return bool(ENCODED.search(key)) and key.isascii() and " " not in key


@settings(FUZZ, max_examples=examples(150))
@given(events=st.lists(st.tuples(s3_keys, st.sampled_from(sorted(TIGRIS_NAMES)), etags,
                                 st.sampled_from(["raw", "quote", "quote-all"])), min_size=1, max_size=5),
       bucket=buckets, flat=st.booleans())
def test_tigris_events_keep_their_keys_raw_or_encoded_and_map_their_names(events, bucket, flat):
    sent = []
    for key, name, etag, encoding in events:
        if encoding == "raw":
            assume(not looks_encoded(key))
            wire = key
        else:
            wire = quote(key, safe="/" if encoding == "quote" else "")
        sent.append((key, name, etag, wire))
    if flat:
        key, name, etag, wire = sent[0]
        sent = sent[:1]
        body = {"eventType": name, "bucket": bucket, "key": wire, "size": 7, "etag": etag}
    else:
        body = {"events": [{"eventVersion": "1", "eventSource": "tigris", "eventName": name, "bucket": bucket,
                            "eventTime": "2026-01-01T00:00:00Z",
                            "object": {"key": wire, "size": 7, "eTag": f'"{etag}"'}} for _, name, etag, wire in sent]}
    parsed = parse_notification(Source.TIGRIS, json.dumps(body).encode())
    expected = [(TIGRIS_NAMES[name], bucket, key, etag) for key, name, etag, _ in sent if TIGRIS_NAMES[name]]
    assert [(e.kind, e.bucket, e.key, e.etag) for e in parsed.events] == expected
    assert parsed.ignored == len(sent) - len(expected)


def through_the_document(body: bytes) -> Parsed | str:
    """The Tigris parser's answer when the body is read as a JSON document first (the way every other body is)."""
    try:
        return tigris.parse(load_json(body, "body"))
    except PayloadError as error:
        return str(error)


@settings(FUZZ, max_examples=examples(200))
@given(data=st.data(), escaped=st.booleans(), form=st.sampled_from(["mutated", "valid", "arbitrary"]))
def test_tigris_body_read_straight_from_its_bytes_is_parsed_as_through_its_json_document(data, escaped, form):
    """The receiver's hot path, pydantic reading the raw body, takes only what the document's parser takes, into
    the same events; anything else goes the document's way, which names the bad field."""
    if form == "mutated":
        doc = data.draw(mutated_payloads(Source.TIGRIS))[2]
    elif form == "valid":
        doc = json.loads(payload("tigris-all-events.json"))
        doc["events"][0]["object"]["key"] = data.draw(s3_keys)
    else:
        doc = {"events": data.draw(json_values)} if data.draw(st.booleans()) else data.draw(json_values)
    body = encode(doc, escaped)
    straight = tigris.parse_bytes(body)
    if form == "valid":
        assert straight is not None
    if straight is not None:
        assert straight == through_the_document(body)


EVENT = b'{"eventName": "OBJECT_CREATED_PUT", "bucket": "b", "object": {"key": "k", "eTag": "e", "size": 3}'


@pytest.mark.parametrize("body", [
    b'{"events": [' + EVENT + b', "x": ' + b"1" * 4_301 + b"}]}",  # json refuses the digits; pydantic would not
    b'{"events": [' + EVENT + b"}], " + b'"x": ' + b"[" * 300 + b"]" * 300 + b"}",  # deeper than pydantic reads
    b"\xef\xbb\xbf" + b'{"events": [' + EVENT + b"}]}",  # a UTF-8 byte order mark
    '{"events": [{"eventName": "OBJECT_CREATED_PUT", "bucket": "b", "object": {"key": "k"}}]}'.encode("utf-16"),
    b'{"events": [' + EVENT + b', "x": NaN}]}',
    b'{"events": [{"eventName": "OBJECT_CREATED_PUT", "bucket": "b", "object": {"key": "\\ud800"}}]}',
    b'{"events": 3, "events": [' + EVENT + b"}]}",
])
def test_tigris_bodies_read_differently_by_pydantic_and_json_get_the_answer_of_the_json_document(body):
    try:
        answer: Parsed | str = parse_notification(Source.TIGRIS, body)
    except PayloadError as error:
        answer = str(error)
    assert answer == through_the_document(body)


def seaweed_entry(name: str, etag: str, how: str) -> dict:
    """A filer entry as SeaweedFS 4.x writes it: the S3 ETag base64 in `extended`, or only the raw MD5 (base64)
    in `attributes.md5` for a plain put."""
    entry = {"name": name, "attributes": {"file_size": 1003, "mtime": 1795749725, "file_mode": 432}, "extended": {
        "Seaweed-X-Amz-Owner": "YWRtaW4=", "X-Amz-Meta-K": "dg=="}}
    if how in ("extended", "both"):
        entry["extended"]["Seaweed-X-Amz-ETag"] = base64.b64encode(etag.encode()).decode()
    if how in ("md5", "both"):
        entry["attributes"]["md5"] = base64.b64encode(bytes.fromhex(etag[:32])).decode()
    return entry


seaweed_keys = s3_keys.filter(lambda k: not k.startswith(".uploads/") and ".versions/" not in k)
"""Keys SeaweedFS can report as objects: its own `.uploads/` part files and `.versions/` directories are not."""


@settings(FUZZ, max_examples=examples(150))
@given(key=seaweed_keys, bucket=buckets, etag=etags, event_type=st.sampled_from(["create", "update", "delete"]),
       how=st.sampled_from(["extended", "md5", "both"]),
       version=st.none() | st.from_regex(r"[0-9a-f]{8,16}", fullmatch=True))
def test_seaweedfs_event_keeps_any_key_and_maps_its_event_type(key, bucket, etag, event_type, how, version):
    if how == "md5":
        assume("-" not in etag)  # a multipart upload has no whole-object MD5
    path = f"/buckets/{bucket}/{key}" + (f".versions/v_{version}" if version else "")
    entry = seaweed_entry(path.rsplit("/", 1)[1], etag, how)
    message = {"new_entry": entry} if event_type == "create" else {"old_entry": entry}
    if event_type == "update":
        message = {"old_entry": seaweed_entry(entry["name"], "0" * 32, "extended"), "new_entry": entry}
    body = {"event_type": event_type, "key": path, "message": message}
    (event,) = parse_notification(Source.SEAWEEDFS, json.dumps(body).encode()).events
    kind = EventKind.DELETED if event_type == "delete" else EventKind.CREATED
    assert (event.kind, event.bucket, event.key, event.etag, event.version_id) == (kind, bucket, key, etag, version)


path_segments = st.lists(st.text(st.characters(exclude_categories=("Cs",), exclude_characters="/"), min_size=1,
                                 max_size=20).filter(lambda s: s != ".uploads" and ".versions" not in s),
                         min_size=1, max_size=3)


@settings(FUZZ, max_examples=examples(100))
@given(old=seaweed_keys, new_dir=path_segments, new_name=path_segments.map(lambda s: s[0]), bucket=buckets,
       etag=etags)
def test_seaweedfs_rename_deletes_the_old_key_and_creates_the_new_one(old, new_dir, new_name, bucket, etag):
    entry = seaweed_entry(old.rsplit("/", 1)[-1], etag, "extended")
    body = {"event_type": "rename", "key": f"/buckets/{bucket}/{old}", "message": {
        "old_entry": entry, "new_entry": {**entry, "name": new_name},
        "new_parent_path": f"/buckets/{bucket}/{'/'.join(new_dir)}"}}
    parsed = parse_notification(Source.SEAWEEDFS, json.dumps(body).encode())
    assert [(e.kind, e.bucket, e.key, e.etag) for e in parsed.events] == [
        (EventKind.DELETED, bucket, old, etag), (EventKind.CREATED, bucket, f"{'/'.join(new_dir)}/{new_name}", etag)]


@settings(FUZZ, max_examples=examples(60))
@given(bucket=buckets, key=seaweed_keys, kind=st.sampled_from(["directory", "system", "upload-part", "bucket"]))
def test_seaweedfs_entries_that_are_not_objects_are_ignored(bucket, key, kind):
    path = {"directory": f"/buckets/{bucket}/{key}", "system": f"/buckets/.system/{bucket}/{key}",
            "upload-part": f"/buckets/{bucket}/.uploads/{hashlib.md5(key.encode()).hexdigest()}/0001.part",
            "bucket": f"/buckets/{bucket}"}[kind]
    entry = {**seaweed_entry("x", "0" * 32, "extended"), "is_directory": kind in ("directory", "bucket")}
    parsed = parse_notification(Source.SEAWEEDFS, json.dumps({"event_type": "create", "key": path,
                                                              "message": {"new_entry": entry}}).encode())
    assert (parsed.events, parsed.ignored) == ([], 1)


@pytest.mark.parametrize("source", [Source.TIGRIS, Source.SEAWEEDFS, Source.S3])
def test_deeply_nested_body_is_a_payload_error(source):
    with pytest.raises(PayloadError):
        parse_notification(source, b"[" * 1_000)


@pytest.mark.parametrize("source", [Source.TIGRIS, Source.SEAWEEDFS, Source.S3])
def test_integer_literal_over_the_digit_limit_is_a_payload_error(source):
    with pytest.raises(PayloadError):
        parse_notification(source, b'{"size": ' + b"1" * 4_301 + b"}")


def test_sns_message_with_an_integer_over_the_digit_limit_is_a_payload_error():
    body = json.dumps({"Type": "Notification", "Message": "1" * 4_301}).encode()
    with pytest.raises(PayloadError) as caught:
        parse_notification(Source.S3, body, {"x-amz-sns-message-type": "Notification"})
    assert caught.value.field == "Message"


def test_seaweedfs_etag_that_is_not_utf8_is_a_payload_error():
    body = {"event_type": "create", "key": "/buckets/b/k",
            "message": {"new_entry": {"name": "k", "extended": {"Seaweed-X-Amz-ETag": "/w=="}}}}
    with pytest.raises(PayloadError) as caught:
        parse_notification(Source.SEAWEEDFS, json.dumps(body).encode())
    assert caught.value.field == "message.new_entry.extended.Seaweed-X-Amz-ETag"


def test_sns_message_that_is_not_an_object_is_named_without_a_trailing_dot():
    body = json.dumps({"Type": "Notification", "Message": "[1, 2]"}).encode()
    with pytest.raises(PayloadError) as caught:
        parse_notification(Source.S3, body, {"x-amz-sns-message-type": "Notification"})
    assert caught.value.field == "Message"


def test_rename_without_new_entry_names_new_entry():
    body = json.loads(payload("seaweedfs-rename.json"))
    del body["message"]["new_entry"]
    with pytest.raises(PayloadError) as caught:
        parse_notification(Source.SEAWEEDFS, json.dumps(body).encode())
    assert caught.value.field == "message.new_entry"


@pytest.mark.parametrize(("source", "body", "field"), [
    (Source.TIGRIS, {"eventType": "OBJECT_CREATED_PUT", "bucket": "b", "key": "k", "etag": "e", "size": 2**63},
     "size"),
    (Source.TIGRIS, {"events": [{"eventName": "OBJECT_CREATED_PUT", "bucket": "b", "object": {
        "key": "k", "eTag": "e", "size": -1}}]}, "events[0].object.size"),
    (Source.S3, {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {
        "key": "k", "eTag": "e", "size": 2**64}}}]}, "Records[0].s3.object.size"),
    (Source.SEAWEEDFS, {"event_type": "create", "key": "/buckets/b/k", "message": {"new_entry": {
        "name": "k", "attributes": {"file_size": 2**63, "md5": "MWW+2eOchCFyCdbsq4RBxw=="}}}},
     "message.new_entry.attributes.file_size"),
], ids=["tigris-flat", "tigris-negative", "s3", "seaweedfs"])
def test_size_outside_a_signed_64_bit_count_is_a_payload_error_naming_the_size(source, body, field):
    with pytest.raises(PayloadError) as caught:
        parse_notification(source, json.dumps(body).encode())
    assert caught.value.field == field


@pytest.mark.parametrize("size", [0, 2**63 - 1])
def test_sizes_at_the_bounds_are_kept(size):
    body = {"eventType": "OBJECT_CREATED_PUT", "bucket": "b", "key": "k", "etag": "e", "size": size}
    (event,) = parse_notification(Source.TIGRIS, json.dumps(body).encode()).events
    assert event.size == size


def test_sns_message_nested_past_the_recursion_limit_is_a_payload_error_naming_the_message():
    body = json.dumps({"Type": "Notification", "Message": "[" * 100_000}).encode()
    with pytest.raises(PayloadError) as caught:
        parse_notification(Source.S3, body, {"x-amz-sns-message-type": "Notification"})
    assert caught.value.field == "Message"


def test_seaweedfs_rename_without_new_parent_path_names_it():
    body = json.loads(payload("seaweedfs-rename.json"))
    del body["message"]["new_parent_path"]
    with pytest.raises(PayloadError) as caught:
        parse_notification(Source.SEAWEEDFS, json.dumps(body).encode())
    assert caught.value.field == "message.new_parent_path"
