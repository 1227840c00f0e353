"""SNS message signatures: an S3 notification that arrives through SNS is believed only once the envelope's
signature verifies against the certificate SNS names in it.

The webhook credentials say the POST came from someone we gave them to; the signature says SNS wrote this
envelope (its Message, and for a SubscriptionConfirmation the SubscribeURL we are about to visit). AWS's
string to sign is `Key\\nValue\\n` for a fixed list of keys in byte order, Subject only when present;
SignatureVersion 1 is RSA PKCS#1 v1.5 over SHA1, 2 over SHA256. The certificate is fetched only over https
from a host that ends in MEDIASIFT_SNS_CONFIRM_HOST_SUFFIX (`.amazonaws.com`), with TLS verification, and
kept per URL: SNS signs with a handful of certificates, so after the first envelope a verification costs one
RSA check and no request.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mediasift.errors import MediasiftError, PayloadError
from mediasift.intake.events import load_json

log = logging.getLogger(__name__)

SIGNED_KEYS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
"""AWS's keys of the string to sign, per message type. Only a Notification's Subject is optional."""
SIGNATURE_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
ENVELOPE_TYPES = ("Notification", "SubscriptionConfirmation")
"""Body `Type`s that make the S3 parser read a body as an SNS envelope even without the SNS header."""
MAX_CERTIFICATE_BYTES = 65_536


class SignatureMismatch(MediasiftError):
    """The envelope is well formed but its signature does not verify: not written by SNS, or altered."""


class CertificateUnavailable(MediasiftError):
    """The signing certificate could not be fetched for now (network, or the host answered 5xx): retryable."""


def require_sns_url(url: str, field: str, host_suffix: str, schemes: tuple[str, ...] | None = None) -> str:
    """The URL's host, if the URL may be visited: its host ends with `host_suffix` and, when `schemes` is given,
    its scheme is one of them. The URL comes from a request body, so anything a URL parser and an HTTP client
    could read differently (user info, backslashes, spaces) is refused outright."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.username is not None or parts.password is not None or any(c in url for c in "\\ \t\r\n"):
        raise PayloadError(field, "URL with user info or whitespace is not followed")
    if schemes is not None and parts.scheme not in schemes:
        raise PayloadError(field, f"scheme {parts.scheme!r} is not allowed ({', '.join(schemes)} only)")
    if not host.endswith(host_suffix):
        raise PayloadError(field, f"host {host!r} is not an SNS host (*{host_suffix})")
    return host


def envelope_type(document: Any, headers: Mapping[str, str]) -> str | None:
    """The SNS message type when the S3 parser will read `document` as an SNS envelope (the same rule: the
    x-amz-sns-message-type header, or a body `Type` of Notification or SubscriptionConfirmation), else None.
    The body's `Type` decides what the parser does with it, so that is the type returned. A body that is not
    a JSON object is never an envelope the parser accepts (it answers 400), so it is not one here either."""
    if not isinstance(document, dict):
        return None
    declared, body_type = headers.get("x-amz-sns-message-type"), document.get("Type")
    if declared is None and body_type not in ENVELOPE_TYPES:
        return None
    return body_type if isinstance(body_type, str) else declared


def string_to_sign(envelope: Mapping[str, Any], message_type: str) -> bytes:
    """AWS's canonical string for this message type; a missing or non-string signed key is a PayloadError."""
    lines = []
    for key in SIGNED_KEYS[message_type]:
        value = envelope.get(key)
        if value is None and key == "Subject":
            continue
        if not isinstance(value, str):
            raise PayloadError(key, "a string is required to verify the SNS signature")
        lines += [key, value]
    return ("\n".join(lines) + "\n").encode()


class SigningCertificates:
    """SNS signing certificates' public keys, fetched from allowed URLs and kept per URL (a bounded LRU, since
    an authenticated sender could name many URLs). Production: https only, TLS verified, `.amazonaws.com`;
    tests name another suffix, scheme or trust root (`verify`, as httpx takes it).

    Concurrent first envelopes for one URL may each fetch it; they are rare and the results are the same,
    which a lock shared across event loops would not be worth."""

    def __init__(self, host_suffix: str, schemes: tuple[str, ...] = ("https",), verify: Any = True,
                 timeout_s: float = 10.0, max_cached: int = 16):
        self.host_suffix, self.schemes, self.verify = host_suffix, schemes, verify
        self.timeout_s, self.max_cached = timeout_s, max_cached
        self._keys: OrderedDict[str, rsa.RSAPublicKey] = OrderedDict()

    async def public_key(self, url: str) -> rsa.RSAPublicKey:
        host = require_sns_url(url, "SigningCertURL", self.host_suffix, self.schemes)
        if not urlsplit(url).path.endswith(".pem"):
            raise PayloadError("SigningCertURL", "not a .pem certificate URL")
        key = self._keys.get(url)
        if key is not None:
            self._keys.move_to_end(url)
            return key
        key = _public_key(await self._fetch(url, host))
        self._keys[url] = key
        if len(self._keys) > self.max_cached:
            self._keys.popitem(last=False)
        log.info("sns_certificate_cached host=%s", host)
        return key

    async def _fetch(self, url: str, host: str) -> bytes:
        try:
            async with httpx.AsyncClient(verify=self.verify, timeout=self.timeout_s) as client, \
                    client.stream("GET", url) as response:
                if response.status_code >= 500:
                    raise CertificateUnavailable(f"SigningCertURL host {host} answered {response.status_code}")
                if response.status_code != 200:
                    raise PayloadError("SigningCertURL", f"certificate URL answered {response.status_code}")
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_CERTIFICATE_BYTES:
                        raise PayloadError("SigningCertURL", f"certificate over {MAX_CERTIFICATE_BYTES} bytes")
                return body
        except httpx.HTTPError as error:
            raise CertificateUnavailable(f"SigningCertURL host {host}: {type(error).__name__}") from None


def _public_key(pem: bytes) -> rsa.RSAPublicKey:
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise PayloadError("SigningCertURL", "not a PEM certificate") from None
    now = datetime.now(UTC)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise PayloadError("SigningCertURL", "certificate expired or not yet valid")
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise PayloadError("SigningCertURL", "certificate key is not RSA")
    return key


class SnsVerifier:
    """Verifies the signature of every SNS envelope POSTed to /webhooks/s3, before the parser reads it."""

    def __init__(self, certificates: SigningCertificates):
        self.certificates = certificates

    async def verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        """Returns when `body` is not an SNS envelope the parser would act on, or is one whose signature
        verifies. Raises PayloadError (400: a field needed for verification is missing or unusable),
        SignatureMismatch (401) or CertificateUnavailable (503, the sender retries)."""
        document = load_json(body, "body")
        message_type = envelope_type(document, headers)
        if message_type not in SIGNED_KEYS:
            return
        version = document.get("SignatureVersion")
        algorithm = SIGNATURE_HASHES.get(version) if isinstance(version, str) else None
        if algorithm is None:
            raise PayloadError("SignatureVersion", f"expected one of {', '.join(SIGNATURE_HASHES)}")
        signature, cert_url = document.get("Signature"), document.get("SigningCertURL")
        if not isinstance(cert_url, str):
            raise PayloadError("SigningCertURL", "required to verify the SNS signature")
        if not isinstance(signature, str):
            raise PayloadError("Signature", "required to verify the SNS signature")
        try:
            raw_signature = base64.b64decode(signature, validate=True)
        except binascii.Error:
            raise PayloadError("Signature", "not base64") from None
        signed = string_to_sign(document, message_type)
        key = await self.certificates.public_key(cert_url)
        try:
            key.verify(raw_signature, signed, padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            raise SignatureMismatch("the SNS signature does not verify") from None
