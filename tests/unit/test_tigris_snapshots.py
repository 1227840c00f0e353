"""The Tigris snapshot path, against a local HTTP server standing in for Tigris: the exact requests boto3
sends for create, list, read-as-of and fork (Tigris headers included, and signed), and snapshot-version
reads on one client never reaching the requests of another, even from concurrent threads."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import boto3
import pytest
import tigris_boto3_ext as tigris_ext
from pydantic import SecretStr

from mediasift.config import Settings
from mediasift.snapshots import ForkUnsupported, SnapshotExists, Snapshots, StoreKind
from mediasift.snapshots.record import SnapshotRecord, write_record
from mediasift.snapshots.tigris import is_tigris

VERSION = "1751631910169675092"
OUTSIDE = "1751631800000000000"
BUCKET = "media"
LIVE, FROZEN = b"live bytes, written after the snapshot", b"bytes as of the snapshot"


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]

    @property
    def tigris(self) -> dict[str, str]:
        return {name: value for name, value in self.headers.items() if name.lower().startswith("x-tigris-")}

    @property
    def signed(self) -> set[str]:
        authorization = self.headers["Authorization"]
        return set(authorization.split("SignedHeaders=")[1].split(",")[0].split(";"))


class FakeTigris(ThreadingHTTPServer):
    """Answers the S3 calls a snapshot makes, as Tigris does, and records every request it gets."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), TigrisHandler)
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.snapshots = [f"{OUTSIDE}; name=nightly"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class TigrisHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeTigris

    def log_message(self, *args) -> None:
        return

    def _record(self) -> Seen:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        url = urlsplit(self.path)
        seen = Seen(self.command, unquote(url.path), parse_qs(url.query), dict(self.headers.items()))
        with self.server.lock:
            self.server.seen.append(seen)
        return seen

    def _answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                length: int | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_PUT(self) -> None:
        seen = self._record()
        headers = {}
        if seen.headers.get("X-Tigris-Snapshot", "").startswith("true"):
            name = seen.headers["X-Tigris-Snapshot"].partition("; name=")[2]
            with self.server.lock:
                self.server.snapshots.append(f"{VERSION}; name={name}")
            headers["X-Tigris-Snapshot-Version"] = VERSION
        self._answer(200, headers={"Location": seen.path, **headers})

    def do_GET(self) -> None:
        seen = self._record()
        if seen.path == "/":
            self._list_buckets()
        elif seen.query.get("list-type") == ["2"]:
            self._list_objects(seen)
        else:
            body = FROZEN if seen.headers.get("X-Tigris-Snapshot-Version") == VERSION else LIVE
            self._answer(200, body, _object_headers(body))

    def do_HEAD(self) -> None:
        seen = self._record()
        body = FROZEN if seen.headers.get("X-Tigris-Snapshot-Version") == VERSION else LIVE
        self._answer(200, headers=_object_headers(body), length=len(body))

    def _list_buckets(self) -> None:
        entries = "".join(f"<Bucket><Name>{name}</Name><CreationDate>2026-12-01T10:00:00.000Z</CreationDate>"
                          "</Bucket>" for name in self.server.snapshots)
        self._answer(200, _xml(f"<ListAllMyBucketsResult><Owner><ID>o</ID></Owner><Buckets>{entries}</Buckets>"
                               "</ListAllMyBucketsResult>"), {"Content-Type": "application/xml"})

    def _list_objects(self, seen: Seen) -> None:
        keys = ["clip.mp4"] if seen.headers.get("X-Tigris-Snapshot-Version") else ["clip.mp4", "new.pdf"]
        contents = "".join(f"<Contents><Key>{k}</Key><LastModified>2026-12-01T10:00:00.000Z</LastModified>"
                           f"<ETag>\"e\"</ETag><Size>1</Size></Contents>" for k in keys)
        self._answer(200, _xml(f"<ListBucketResult><Name>{BUCKET}</Name><KeyCount>{len(keys)}</KeyCount>"
                               f"<IsTruncated>false</IsTruncated>{contents}</ListBucketResult>"),
                     {"Content-Type": "application/xml"})


def _object_headers(body: bytes) -> dict[str, str]:
    etag = "frozen0etag" if body == FROZEN else "live0etag"
    return {"ETag": f'"{etag}"', "Last-Modified": "Tue, 01 Dec 2026 10:00:00 GMT",
            "Content-Type": "application/octet-stream"}


def _xml(inner: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>' + inner.replace(
        ">", ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/">', 1)).encode()


@pytest.fixture
def fake_tigris() -> Iterator[FakeTigris]:
    server = FakeTigris()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def snapshots(fake_tigris, tmp_path) -> Snapshots:
    settings = Settings(home=tmp_path, s3_endpoint_url=fake_tigris.url, s3_access_key=SecretStr("tid_test"),
                        s3_secret_key=SecretStr("tsec_test"), bucket=BUCKET)
    return Snapshots(settings, kind=StoreKind.TIGRIS)


def requests(server: FakeTigris) -> list[tuple[str, str, dict]]:
    with server.lock:
        seen, server.seen = server.seen, []
    for request in seen:
        assert {name.lower() for name in request.tigris} <= request.signed, "Tigris headers are signed"
    return [(r.method, r.path, r.tigris) for r in seen]


def test_create_lists_the_name_then_sends_a_named_snapshot_create_bucket(snapshots, fake_tigris):
    record = snapshots.create("before-retrain")

    assert requests(fake_tigris) == [
        ("GET", "/", {"X-Tigris-Snapshot": BUCKET}),
        ("PUT", f"/{BUCKET}", {"X-Tigris-Snapshot": "true; name=before-retrain"}),
    ]
    assert (record.tigris_version, record.store, record.lance_tag) == (VERSION, StoreKind.TIGRIS,
                                                                       "snapshot-before-retrain")


def test_list_joins_recorded_snapshots_with_those_tigris_lists(snapshots, fake_tigris):
    snapshots.create("before-retrain")
    requests(fake_tigris)

    listed = snapshots.list()

    assert requests(fake_tigris) == [("GET", "/", {"X-Tigris-Snapshot": BUCKET})]
    assert [(r.name, r.tigris_version, r.recorded) for r in listed] == [
        ("nightly", OUTSIDE, False), ("before-retrain", VERSION, True)], "oldest first"


def test_a_name_tigris_already_has_is_refused_before_anything_is_sent(snapshots, fake_tigris):
    with pytest.raises(SnapshotExists, match="'nightly' exists already"):
        snapshots.create("nightly")
    assert requests(fake_tigris) == [("GET", "/", {"X-Tigris-Snapshot": BUCKET})]


def test_reads_as_of_a_snapshot_carry_its_version_on_head_get_and_list(snapshots, fake_tigris):
    snapshots.create("before-retrain")
    requests(fake_tigris)
    reader = snapshots.reader("before-retrain")

    head, body, keys = reader.head("clip.mp4"), reader.read("clip.mp4"), reader.keys()

    pinned = {"X-Tigris-Snapshot-Version": VERSION}
    assert requests(fake_tigris) == [("HEAD", f"/{BUCKET}/clip.mp4", pinned), ("GET", f"/{BUCKET}/clip.mp4", pinned),
                                     ("GET", f"/{BUCKET}", pinned)]
    assert (head.etag, head.size, body, keys) == ("frozen0etag", len(FROZEN), FROZEN, ["clip.mp4"])


def test_fork_creates_a_bucket_from_the_snapshot_version(snapshots, fake_tigris):
    snapshots.create("before-retrain")
    requests(fake_tigris)

    forked = snapshots.fork("before-retrain", "media-replay")

    assert requests(fake_tigris) == [("PUT", "/media-replay", {"X-Tigris-Fork-Source-Bucket": BUCKET,
                                                               "X-Tigris-Fork-Source-Bucket-Snapshot": VERSION})]
    assert forked == {"bucket": "media-replay", "source_bucket": BUCKET, "snapshot": "before-retrain",
                      "snapshot_version": VERSION}


def test_a_manifest_snapshot_cannot_be_forked(tmp_path):
    settings = Settings(home=tmp_path, s3_endpoint_url="http://127.0.0.1:1", bucket=BUCKET)
    snapshots = Snapshots(settings, kind=StoreKind.S3)
    snapshots.folder("local").mkdir(parents=True)
    write_record(snapshots.folder("local"), SnapshotRecord("local", BUCKET, StoreKind.S3, "t", versioned=True))
    with pytest.raises(ForkUnsupported, match="only Tigris forks buckets"):
        snapshots.fork("local", "copy")


def test_snapshot_reads_on_one_client_never_reach_another_clients_concurrent_calls(snapshots, fake_tigris):
    snapshots.create("before-retrain")
    requests(fake_tigris)
    reader = snapshots.reader("before-retrain")
    plain = boto3.session.Session().client(
        "s3", endpoint_url=fake_tigris.url, region_name="us-east-1", aws_access_key_id="tid_test",
        aws_secret_access_key="tsec_test")
    start = threading.Barrier(3)
    got: dict[str, list[bytes]] = {"pinned": [], "plain": [], "pinned-head": []}

    def pinned_reads() -> None:
        start.wait()
        got["pinned"] += [reader.read("pinned.bin") for _ in range(25)]

    def pinned_heads() -> None:
        start.wait()
        got["pinned-head"] += [reader.head("pinned.bin").etag.encode() for _ in range(25)]

    def plain_reads() -> None:
        start.wait()
        got["plain"] += [plain.get_object(Bucket=BUCKET, Key="plain.bin")["Body"].read() for _ in range(25)]

    threads = [threading.Thread(target=f) for f in (pinned_reads, pinned_heads, plain_reads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    seen = requests(fake_tigris)
    assert [h for _, path, h in seen if path.endswith("/plain.bin")] == [{}] * 25
    assert [h for _, path, h in seen if path.endswith("/pinned.bin")] == [{"X-Tigris-Snapshot-Version": VERSION}] * 50
    assert got == {"pinned": [FROZEN] * 25, "plain": [LIVE] * 25, "pinned-head": [b"frozen0etag"] * 25}


def test_a_shared_client_would_leak_the_snapshot_header_which_is_why_each_read_gets_its_own(fake_tigris):
    shared = boto3.session.Session().client(
        "s3", endpoint_url=fake_tigris.url, region_name="us-east-1", aws_access_key_id="tid_test",
        aws_secret_access_key="tsec_test")
    with tigris_ext.TigrisSnapshot(shared, BUCKET, snapshot_version=VERSION):
        someone_else = shared.get_object(Bucket=BUCKET, Key="unrelated.bin")["Body"].read()
    assert someone_else == FROZEN
    assert requests(fake_tigris) == [("GET", f"/{BUCKET}/unrelated.bin", {"X-Tigris-Snapshot-Version": VERSION})]


def test_tigris_is_recognised_by_its_endpoint():
    assert is_tigris("https://t3.storage.dev") and is_tigris("https://fly.storage.tigris.dev")
    assert not is_tigris("http://127.0.0.1:8333") and not is_tigris("https://s3.us-east-1.amazonaws.com")
    assert not is_tigris("https://evilstorage.dev") and not is_tigris(None)
