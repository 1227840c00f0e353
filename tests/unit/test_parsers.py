import json

import pytest

from mediasift.errors import PayloadError
from mediasift.intake.events import EventKind, Source
from mediasift.intake.parsers import parse_notification
from tests.conftest import payload


def events(source: Source, name: str, headers: dict | None = None):
    return parse_notification(source, payload(name), headers).events


def summary(parsed_events) -> list[tuple]:
    return [(e.kind.value, e.bucket, e.key, e.etag) for e in parsed_events]


@pytest.mark.parametrize(
    ("source", "name", "expected"),
    [
        (Source.TIGRIS, "tigris-documented.json", [
            ("created", "my-bucket", "path/to/myfile.txt", "d41d8cd98f00b204e9800998ecf8427e"),
            ("deleted", "my-bucket", "path/to/anotherfile.jpg", "c4ca4238a0b923820dcc509a6f75849b"),
        ]),
        (Source.TIGRIS, "tigris-blog-flat.json", [
            ("created", "my-media-bucket", "videos/interview-2025.mp4", "abc123def456"),
        ]),
        (Source.SEAWEEDFS, "seaweedfs-create.json", [
            ("created", "hooks2", "in/img_3.jpg", "3165bed9e39c84217209d6ecab8441c7"),
        ]),
        (Source.SEAWEEDFS, "seaweedfs-multipart-create.json", [
            ("created", "hooks2", "in/big.bin", "bb676e14c2f339524aed698bd153f741-3"),
        ]),
        (Source.SEAWEEDFS, "seaweedfs-delete.json", [
            ("deleted", "hooks2", "in/img_2.jpg", "23b57995aaabf5469465db0c958af3de"),
        ]),
        (Source.S3, "s3-records.json", [
            ("created", "media", "videos/red flower.mp4", "9b2cf535f27731c974343645a3985328"),
        ]),
    ],
)
def test_reference_payloads_parse_to_expected_events(source, name, expected):
    assert summary(events(source, name)) == expected


def test_every_tigris_event_name_is_understood():
    parsed = parse_notification(Source.TIGRIS, payload("tigris-all-events.json"))
    kinds = {e.key.removeprefix("all/").removesuffix(".bin"): e.kind for e in parsed.events}
    assert kinds == {
        "object_created_put": EventKind.CREATED,
        "object_created_multipart": EventKind.CREATED,
        "object_created_copy": EventKind.CREATED,
        "object_rename": EventKind.CREATED,
        "object_deleted": EventKind.DELETED,
    }
    assert parsed.ignored == 1  # OBJECT_TRANSITIONED changes the storage class, not the version
    assert all(not e.etag.startswith('"') for e in parsed.events)


def test_s3_record_carries_version_id_and_sequencer():
    (event,) = events(Source.S3, "s3-records.json")
    assert event.version_id == "096fKKXTRTtl3on89fVO.nfljtsv6qko"
    assert event.sequencer == "0055AED6DCD90281E5"
    assert event.size == 1048576


def test_sns_notification_unwraps_the_records_string():
    parsed = parse_notification(Source.S3, payload("sns-notification.json"), {"x-amz-sns-message-type": "Notification"})
    assert summary(parsed.events) == [("created", "media", "videos/red flower.mp4",
                                       "9b2cf535f27731c974343645a3985328")]


def test_sns_subscription_confirmation_yields_the_url_and_no_events():
    parsed = parse_notification(Source.S3, payload("sns-subscription.json"),
                                {"X-Amz-Sns-Message-Type": "SubscriptionConfirmation"})
    assert parsed.events == []
    assert parsed.subscribe_url.startswith("https://sns.us-east-1.amazonaws.com/")


def test_minio_form_with_escaped_slashes_and_s3_prefix():
    (event,) = events(Source.S3, "minio-put.json")
    assert (event.kind, event.bucket, event.key) == (EventKind.CREATED, "media", "clips/2026/day one%.mp4")


def test_body_without_records_is_accepted_and_ignored():
    parsed = parse_notification(Source.S3, payload("s3-test-event.json"))
    assert parsed.events == [] and parsed.ignored == 1


@pytest.mark.parametrize("name", ["seaweedfs-directory.json", "seaweedfs-upload-part.json", "seaweedfs-system.json"])
def test_seaweedfs_non_object_events_are_ignored(name):
    parsed = parse_notification(Source.SEAWEEDFS, payload(name))
    assert parsed.events == [] and parsed.ignored == 1


def test_seaweedfs_overwrite_is_a_create_of_the_new_etag():
    (event,) = events(Source.SEAWEEDFS, "seaweedfs-update.json")
    assert (event.kind, event.key) == (EventKind.CREATED, "in/img_3.jpg")
    assert event.etag == "0123456789abcdef0123456789abcdef"


def test_seaweedfs_rename_deletes_the_old_key_and_creates_the_new():
    assert summary(events(Source.SEAWEEDFS, "seaweedfs-rename.json")) == [
        ("deleted", "hooks2", "in/img_3.jpg", "3165bed9e39c84217209d6ecab8441c7"),
        ("created", "hooks2", "out/img_3 renamed.jpg", "3165bed9e39c84217209d6ecab8441c7"),
    ]


def test_seaweedfs_versioned_entry_maps_to_key_and_version_id():
    (event,) = events(Source.SEAWEEDFS, "seaweedfs-versioned.json")
    assert (event.key, event.version_id) == ("in/img_3.jpg", "0a1b2c3d")


@pytest.mark.parametrize(
    ("source", "body", "field"),
    [
        (Source.TIGRIS, b"{not json", "body"),
        (Source.TIGRIS, b"[]", "body"),
        (Source.TIGRIS, {"events": [{"eventName": "OBJECT_CREATED_PUT", "bucket": "b", "object": {}}]},
         "events[0].object.key"),
        (Source.TIGRIS, {"events": [{"eventName": "OBJECT_CREATED_PUT", "object": {"key": "k"}}]}, "events[0].bucket"),
        (Source.TIGRIS, {"eventType": "OBJECT_CREATED_PUT", "bucket": "b"}, "key"),
        (Source.S3, {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}}}]},
         "Records[0].s3.object"),
        (Source.S3, {"Type": "Notification", "Message": "{oops"}, "Message"),
        (Source.SEAWEEDFS, {"event_type": "create", "key": "/buckets/b/k"}, "message"),
        (Source.SEAWEEDFS, {"event_type": "create", "key": "/buckets/b/k", "message": {}}, "message.new_entry"),
        (Source.SEAWEEDFS, {"event_type": "create", "key": "/buckets/b/k",
                            "message": {"new_entry": {"name": "k", "extended": {"Seaweed-X-Amz-ETag": "@@@"}}}},
         "message.new_entry.extended.Seaweed-X-Amz-ETag"),
    ],
)
def test_malformed_payload_names_the_bad_field(source, body, field):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(PayloadError) as caught:
        parse_notification(source, raw)
    assert caught.value.field == field


def test_tigris_keys_are_decoded_only_when_they_look_encoded():
    body = {"events": [
        {"eventName": "OBJECT_CREATED_PUT", "bucket": "b", "object": {"key": "a%20b%2Bc.txt", "eTag": "1"}},
        {"eventName": "OBJECT_CREATED_PUT", "bucket": "b", "object": {"key": "100% sure+.txt", "eTag": "2"}},
    ]}
    keys = [e.key for e in parse_notification(Source.TIGRIS, json.dumps(body).encode()).events]
    assert keys == ["a b+c.txt", "100% sure+.txt"]


def test_tigris_event_time_is_the_sequencer_that_tells_a_redelivery_from_a_new_event():
    first, second = events(Source.TIGRIS, "tigris-documented.json")
    (flat,) = events(Source.TIGRIS, "tigris-blog-flat.json")
    assert (first.sequencer, second.sequencer) == ("2023-05-15T10:30:00+00:00", "2023-05-15T11:45:00+00:00")
    assert flat.sequencer == "2025-03-02T10:45:00+00:00"  # the flat form's lastModified


@pytest.mark.parametrize("message", ["", "{", "1" * 4_301, "[" * 100_000])
def test_unreadable_sns_message_is_refused_naming_it_in_a_detail_with_one_separator(message):
    body = json.dumps({"Type": "Notification", "Message": message}).encode()
    with pytest.raises(PayloadError) as caught:
        parse_notification(Source.S3, body, {"x-amz-sns-message-type": "Notification"})
    assert caught.value.field == "Message" and ": " not in caught.value.message
