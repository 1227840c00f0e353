"""Real SeaweedFS → its real filer webhook → the real receiver over HTTP → the inbox."""

import json
import time

import pytest
from botocore.exceptions import ClientError
from pydantic import SecretStr

from mediasift.config import Settings
from mediasift.inbox import Inbox
from mediasift.intake.events import EventKind
from mediasift.intake.reconcile import sweep
from mediasift.local.stack import DagsterMode, Stack
from mediasift.store.s3 import ObjectStore
from tests.conftest import payload
from tests.helpers import events_for, wait_for_events


def test_upload_reaches_the_inbox_through_the_real_webhook(stack, bucket, stack_inbox):
    client = ObjectStore.from_settings(stack.settings).client
    put = client.put_object(Bucket=bucket, Key="in/clip.mp4", Body=b"\x00" * 1000)
    (event,) = wait_for_events(stack_inbox, bucket, 1)
    assert (event.source, event.kind, event.key) == ("seaweedfs", EventKind.CREATED, "in/clip.mp4")
    assert event.etag == put["ETag"].strip('"') and event.size == 1000


def test_overwrite_and_delete_arrive_as_new_version_and_deletion(stack, bucket, stack_inbox):
    client = ObjectStore.from_settings(stack.settings).client
    first = client.put_object(Bucket=bucket, Key="doc.txt", Body=b"one")["ETag"].strip('"')
    wait_for_events(stack_inbox, bucket, 1)
    second = client.put_object(Bucket=bucket, Key="doc.txt", Body=b"two")["ETag"].strip('"')
    wait_for_events(stack_inbox, bucket, 2)
    client.delete_object(Bucket=bucket, Key="doc.txt")
    found = wait_for_events(stack_inbox, bucket, 3)
    assert [(e.kind.value, e.etag) for e in found] == [("created", first), ("created", second), ("deleted", second)]


def test_keys_with_spaces_unicode_plus_percent_and_900_characters_arrive_intact(stack, bucket, stack_inbox):
    long_key = "y" * 100 + "/" + "/".join(["x" * 99] * 8)  # SeaweedFS limits each path segment to 255 bytes
    keys = ["with spaces/a b.txt", "ünïcödé/日本語 ファイル.txt", "plus+sign.txt", "per%25cent%2Fslash.txt",
            "dots..in..name.txt", long_key]
    assert len(long_key) == 900
    client = ObjectStore.from_settings(stack.settings).client
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=key.encode())
    found = wait_for_events(stack_inbox, bucket, len(keys))
    assert sorted(e.key for e in found) == sorted(keys)
    listed = sorted(key for key, _ in ObjectStore.from_settings(stack.settings).list_objects(bucket))
    assert listed == sorted(keys)


def test_store_refuses_a_dot_dot_segment_and_nothing_reaches_the_inbox(stack, bucket, stack_inbox):
    client = ObjectStore.from_settings(stack.settings).client
    with pytest.raises(ClientError, match="InvalidRequest"):
        client.put_object(Bucket=bucket, Key="../escape.txt", Body=b"x")
    client.put_object(Bucket=bucket, Key="marker.txt", Body=b"after")
    (only,) = wait_for_events(stack_inbox, bucket, 1)
    assert only.key == "marker.txt", "the webhook delivers in order: a refused put's event would come first"


def test_same_notification_posted_twice_gives_one_entry(stack, bucket, stack_inbox, webhook):
    body = json.loads(payload("seaweedfs-create.json"))
    body["key"] = f"/buckets/{bucket}/in/img_3.jpg"
    assert webhook("seaweedfs", body).json()["accepted"] == 1
    assert webhook("seaweedfs", body).json()["duplicates"] == 1
    assert len(events_for(stack_inbox, bucket)) == 1


def test_malformed_or_unauthenticated_post_writes_nothing(stack, bucket, stack_inbox, webhook):
    body = json.loads(payload("seaweedfs-create.json"))
    body["key"] = f"/buckets/{bucket}/in/img_3.jpg"
    assert webhook("seaweedfs", body, auth=False).status_code == 401
    del body["message"]["new_entry"]["extended"]
    del body["message"]["new_entry"]["attributes"]["md5"]
    response = webhook("seaweedfs", body)
    assert response.status_code == 400
    assert "message.new_entry.extended.Seaweed-X-Amz-ETag" in response.json()["detail"]
    assert events_for(stack_inbox, bucket) == []


def test_wrong_credentials_are_refused_by_the_store(stack, bucket):
    wrong = ObjectStore.from_settings(stack.settings.model_copy(update={"s3_access_key": SecretStr("MSWRONGKEY"),
                                                                   "s3_secret_key": SecretStr("not-the-secret")}))
    with pytest.raises(ClientError) as caught:
        wrong.client.put_object(Bucket=bucket, Key="x", Body=b"x")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_reconcile_enqueues_every_object_missed_while_the_receiver_was_down(tmp_path):
    with Stack(Settings(home=tmp_path), DagsterMode.NONE) as own:
        storage = ObjectStore.from_settings(own.settings)
        inbox = Inbox(own.settings.inbox_url)
        bucket = own.settings.bucket
        storage.client.put_object(Bucket=bucket, Key="kept.txt", Body=b"kept")
        storage.client.put_object(Bucket=bucket, Key="removed later.txt", Body=b"bye")
        wait_for_events(inbox, bucket, 2)

        own.receiver.stop()
        missed = {f"missed/{i} ü+.txt": storage.client.put_object(Bucket=bucket, Key=f"missed/{i} ü+.txt",
                                                                  Body=f"m{i}".encode())["ETag"].strip('"')
                  for i in range(5)}
        storage.client.delete_object(Bucket=bucket, Key="removed later.txt")
        storage.client.put_object(Bucket=bucket, Key="_mediasift/derived.parquet", Body=b"ours")
        time.sleep(1)
        assert len(events_for(inbox, bucket)) == 2

        first = sweep(inbox, storage, bucket, ignore_prefix=own.settings.derived_prefix)
        second = sweep(inbox, storage, bucket, ignore_prefix=own.settings.derived_prefix)

        new = events_for(inbox, bucket)[2:]
        assert sorted((e.kind.value, e.key, e.etag) for e in new) == sorted(
            [("created", key, etag) for key, etag in missed.items()] + [("deleted", "removed later.txt", new[-1].etag)]
        )
        assert {e.source for e in new} == {"reconcile"}
        assert (first.created, first.deleted, first.listed) == (5, 1, 6)
        assert (second.created, second.deleted) == (0, 0)
        assert len(events_for(inbox, bucket)) == 2 + 6


def test_reconcile_deletes_the_version_a_versioned_bucket_lost_by_its_version_id(stack, bucket, stack_inbox):
    """On a versioned SeaweedFS bucket a delete sends no webhook event: the sweep's delete is the only one,
    and it must name the version the webhook's create did (its VersionId), or the delete run removes
    nothing and the deleted object stays searchable."""
    storage = ObjectStore.from_settings(stack.settings)
    storage.client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    put = storage.client.put_object(Bucket=bucket, Key="kept/gone soon.pdf", Body=b"%PDF-1.4 a")
    (created,) = wait_for_events(stack_inbox, bucket, 1)
    assert created.version_id == put["VersionId"], "the webhook names the version"
    storage.client.delete_object(Bucket=bucket, Key="kept/gone soon.pdf")

    result = sweep(stack_inbox, storage, bucket)

    (deleted,) = [e for e in events_for(stack_inbox, bucket) if e.kind is EventKind.DELETED]
    assert (result.created, result.deleted) == (0, 1)
    assert (deleted.version_hash, deleted.version_id) == (created.version_hash, put["VersionId"])
