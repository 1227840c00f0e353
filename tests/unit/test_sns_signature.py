"""SNS signatures on /webhooks/s3, against a certificate made here and served by a real HTTPS server on a free
loopback port (TLS with that same certificate, trusted by the fetcher as its only root): signed envelopes of
both signature versions are committed, anything unsigned, altered, or pointing at a certificate off the SNS
hosts is refused with nothing written and no SubscribeURL visited, and the certificate is fetched once."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import json
import ssl
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from starlette.testclient import TestClient

from mediasift.config import Settings
from mediasift.errors import PayloadError
from mediasift.intake.receiver import create_app
from mediasift.intake.sns_signature import SigningCertificates, SnsVerifier, string_to_sign
from tests.conftest import payload

TOKEN = "sns-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LOOPBACK = "127.0.0.1"


def certificate(key: rsa.RSAPrivateKey, valid_days: tuple[int, int] = (-1, 30)) -> bytes:
    """A self-signed certificate for 127.0.0.1 (usable as the TLS server's and as the SNS signing one)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + dt.timedelta(days=valid_days[0]))
            .not_valid_after(now + dt.timedelta(days=valid_days[1]))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class CertServer:
    """The HTTPS server the signing certificates are fetched from, counting GETs per path."""

    base: str
    key: rsa.RSAPrivateKey
    trust: ssl.SSLContext
    hits: Counter

    @property
    def cert_url(self) -> str:
        return f"{self.base}/SimpleNotificationService-test.pem"


@pytest.fixture(scope="module")
def cert_server(tmp_path_factory) -> Iterator[CertServer]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = certificate(key)
    folder: Path = tmp_path_factory.mktemp("sns-tls")
    (folder / "cert.pem").write_bytes(pem)
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    routes = {"/SimpleNotificationService-test.pem": (200, pem),
              "/expired.pem": (200, certificate(key, (-30, -1))),
              "/down.pem": (500, b"")}
    hits: Counter = Counter()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            hits[self.path] += 1
            status, body = routes.get(self.path, (404, b""))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    trust = ssl.create_default_context(cafile=str(folder / "cert.pem"))
    try:
        yield CertServer(f"https://{LOOPBACK}:{server.server_address[1]}", key, trust, hits)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def sign(envelope: dict, key: rsa.RSAPrivateKey, version: str = "2") -> dict:
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signed = {**envelope, "SignatureVersion": version}
    signature = key.sign(string_to_sign(signed, signed["Type"]), padding.PKCS1v15(), algorithm)
    return {**signed, "Signature": base64.b64encode(signature).decode()}


def notification(cert_url: str, key: str = "videos/red+flower.mp4") -> dict:
    envelope = json.loads(payload("sns-notification.json"))
    message = json.loads(envelope["Message"])
    message["Records"][0]["s3"]["object"]["key"] = key
    return {**envelope, "Message": json.dumps(message), "SigningCertURL": cert_url}


@pytest.fixture
def receiver(cert_server, tmp_path) -> Iterator[tuple[TestClient, object]]:
    """A receiver whose SNS verifier trusts only the test server (https, TLS verified against its certificate)."""
    settings = Settings(home=tmp_path, webhook_token=TOKEN, sns_confirm_host_suffix=LOOPBACK)
    verifier = SnsVerifier(SigningCertificates(LOOPBACK, verify=cert_server.trust))
    app = create_app(settings, sns=verifier)
    with TestClient(app) as client:
        yield client, app.state.inbox


def post(client: TestClient, envelope: dict, header: str | None = "Notification"):
    headers = {**AUTH, **({"x-amz-sns-message-type": header} if header else {})}
    return client.post("/webhooks/s3", content=json.dumps(envelope).encode(), headers=headers)


@pytest.mark.parametrize("version", ["1", "2"])
def test_signed_notification_is_committed_and_its_certificate_fetched_once(receiver, cert_server, version):
    client, inbox = receiver
    before = cert_server.hits["/SimpleNotificationService-test.pem"]
    for i in range(3):
        response = post(client, sign(notification(cert_server.cert_url, f"v{version}/clip{i}.mp4"),
                                     cert_server.key, version))
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == 1
    assert [e.key for e in inbox.events_after(0, 10)] == [f"v{version}/clip{i}.mp4" for i in range(3)]
    assert cert_server.hits["/SimpleNotificationService-test.pem"] - before == 1, "cached per URL"


def test_altered_envelope_is_401_and_writes_nothing(receiver, cert_server):
    client, inbox = receiver
    signed = sign(notification(cert_server.cert_url), cert_server.key)
    forged = {**signed, "Message": notification(cert_server.cert_url, "evil/other.mp4")["Message"]}
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for envelope in (forged, sign(notification(cert_server.cert_url), other_key),
                     {**signed, "SignatureVersion": "1"}):
        response = post(client, envelope)
        assert (response.status_code, response.json()) == (401, {"detail": "unauthorized"})
    assert inbox.events_after(0, 10) == []
    assert 'reason="sns_signature"' in client.get("/metrics").text


@pytest.mark.parametrize(("change", "field"), [
    ({"Signature": None}, "Signature"),
    ({"Signature": "not base64!"}, "Signature"),
    ({"SignatureVersion": "3"}, "SignatureVersion"),
    ({"SigningCertURL": None}, "SigningCertURL"),
    ({"MessageId": None}, "MessageId"),
], ids=["no-signature", "garbled-signature", "unknown-version", "no-cert-url", "no-message-id"])
def test_envelope_missing_what_verification_needs_is_400_naming_it(receiver, cert_server, change, field):
    client, inbox = receiver
    envelope = {k: v for k, v in {**sign(notification(cert_server.cert_url), cert_server.key), **change}.items()
                if v is not None}
    response = post(client, envelope)
    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"{field}: ")
    assert inbox.events_after(0, 10) == []


def test_unsigned_envelope_without_the_sns_header_is_refused_too(receiver, cert_server):
    """The parser reads a body whose Type is Notification as an envelope even without the header; so does the
    check, or leaving the header out would skip it."""
    client, inbox = receiver
    unsigned = notification(cert_server.cert_url)
    assert post(client, unsigned, header=None).status_code == 400
    assert post(client, sign(unsigned, cert_server.key), header=None).json()["accepted"] == 1
    assert len(inbox.events_after(0, 10)) == 1


@pytest.mark.parametrize("cert_url", [
    "http://127.0.0.1:1/SimpleNotificationService-test.pem",
    "https://sns.us-east-1.amazonaws.com.evil.test/SimpleNotificationService-x.pem",
    "https://evil.test@127.0.0.1/SimpleNotificationService-test.pem",
    "https://127.0.0.1/SimpleNotificationService-test.txt",
], ids=["plain-http", "other-host", "user-info", "not-pem"])
def test_certificate_url_off_the_policy_is_400_and_never_fetched(receiver, cert_server, cert_url):
    client, inbox = receiver
    before = sum(cert_server.hits.values())
    response = post(client, sign(notification(cert_url), cert_server.key))
    assert response.status_code == 400
    assert response.json()["detail"].startswith("SigningCertURL: ")
    assert sum(cert_server.hits.values()) == before
    assert inbox.events_after(0, 10) == []


def test_expired_certificate_is_400_and_an_unreachable_one_503_to_retry(receiver, cert_server):
    client, inbox = receiver
    expired = post(client, sign(notification(f"{cert_server.base}/expired.pem"), cert_server.key))
    assert expired.status_code == 400 and "expired" in expired.json()["detail"]
    down = post(client, sign(notification(f"{cert_server.base}/down.pem"), cert_server.key))
    assert down.status_code == 503 and int(down.headers["Retry-After"]) > 0
    assert inbox.events_after(0, 10) == []


@pytest.fixture
def subscribe_server() -> Iterator[tuple[str, list[str]]]:
    """Where SubscribeURLs point: a plain HTTP server on a free loopback port recording each visit."""
    visits: list[str] = []

    class Confirm(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            visits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((LOOPBACK, 0), Confirm)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}", visits
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_subscription_is_confirmed_only_when_signed(receiver, cert_server, subscribe_server):
    client, _ = receiver
    base, visits = subscribe_server
    confirmation = {**json.loads(payload("sns-subscription.json")), "SigningCertURL": cert_server.cert_url,
                    "SubscribeURL": f"{base}/?Action=ConfirmSubscription&Token=tok"}
    forged = {**sign(confirmation, cert_server.key, "1"),
              "SubscribeURL": f"{base}/?Action=ConfirmSubscription&Token=evil"}
    assert post(client, forged, "SubscriptionConfirmation").status_code == 401
    assert post(client, confirmation, "SubscriptionConfirmation").status_code == 400
    assert visits == []
    response = post(client, sign(confirmation, cert_server.key, "1"), "SubscriptionConfirmation")
    assert (response.status_code, response.json()) == (200, {"subscription": "confirmed"})
    assert visits == ["/?Action=ConfirmSubscription&Token=tok"]


def test_production_policy_fetches_only_https_from_sns_hosts():
    """The default verifier (MEDIASIFT_SNS_CONFIRM_HOST_SUFFIX=.amazonaws.com) refuses, before any request,
    every URL but an https one on an AWS host."""
    certificates = SigningCertificates(Settings().sns_confirm_host_suffix)
    for url in ("http://sns.us-east-1.amazonaws.com/SimpleNotificationService-a.pem",
                "https://sns.us-east-1.amazonaws.com.example.org/SimpleNotificationService-a.pem",
                "https://example.org/SimpleNotificationService-a.pem?h=.amazonaws.com",
                "https://sns.us-east-1.amazonaws.com@example.org/SimpleNotificationService-a.pem"):
        with pytest.raises(PayloadError) as refused:
            asyncio.run(certificates.public_key(url))
        assert refused.value.field == "SigningCertURL"
    assert certificates.schemes == ("https",) and certificates.verify is True


def test_string_to_sign_is_aws_key_newline_value_lines_subject_only_when_present():
    envelope = {"Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:t", "Message": "hi\nthere",
                "Timestamp": "2026-01-01T00:00:00.000Z", "SignatureVersion": "1"}
    assert string_to_sign(envelope, "Notification") == (
        b"Message\nhi\nthere\nMessageId\nm-1\nTimestamp\n2026-01-01T00:00:00.000Z\nTopicArn\narn:t\nType\nNotification\n")
    assert string_to_sign({**envelope, "Subject": "s"}, "Notification").startswith(
        b"Message\nhi\nthere\nMessageId\nm-1\nSubject\ns\nTimestamp\n")
    confirmation = {**envelope, "Type": "SubscriptionConfirmation", "SubscribeURL": "https://u", "Token": "t"}
    assert string_to_sign(confirmation, "SubscriptionConfirmation") == (
        b"Message\nhi\nthere\nMessageId\nm-1\nSubscribeURL\nhttps://u\nTimestamp\n2026-01-01T00:00:00.000Z\n"
        b"Token\nt\nTopicArn\narn:t\nType\nSubscriptionConfirmation\n")
