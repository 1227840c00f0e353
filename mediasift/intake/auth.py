"""Who may POST notifications: the webhook's Bearer token(s) and Basic credentials.

Every check is a constant-time comparison against bytes made once at start-up (the check runs for every
notification). During a rotation two tokens are accepted, MEDIASIFT_WEBHOOK_TOKEN and
MEDIASIFT_WEBHOOK_TOKEN_PREVIOUS, so senders can be moved to the new token one at a time. With nothing
configured every POST is refused: the receiver fails closed, and `mediasift receiver` will not start.
"""

from __future__ import annotations

import base64
import hmac
import logging

from mediasift.config import Settings, secret

log = logging.getLogger(__name__)

HOW_TO_CONFIGURE = (
    "set MEDIASIFT_WEBHOOK_TOKEN (for instance to the output of "
    "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`) and give the same token to the bucket's "
    "notification sender as `Authorization: Bearer <token>`; or set MEDIASIFT_WEBHOOK_BASIC_USER and "
    "MEDIASIFT_WEBHOOK_BASIC_PASSWORD for senders that use Basic auth (SNS: https://user:password@host/...)"
)


def credential_problem(settings: Settings) -> str | None:
    """Why these settings cannot authenticate webhook senders as intended, or None when they can. A half-made
    configuration (a previous token without a current one, a Basic user without a password) is refused too:
    it would silently accept fewer senders, or other ones, than the operator meant."""
    token, previous = secret(settings.webhook_token), secret(settings.webhook_token_previous)
    user, password = settings.webhook_basic_user, secret(settings.webhook_basic_password)
    if previous and not token:
        return "MEDIASIFT_WEBHOOK_TOKEN_PREVIOUS is set without MEDIASIFT_WEBHOOK_TOKEN (the new token)"
    if bool(user) != bool(password):
        return "MEDIASIFT_WEBHOOK_BASIC_USER and MEDIASIFT_WEBHOOK_BASIC_PASSWORD must be set together"
    if not token and not user:
        return f"no webhook credentials are configured: {HOW_TO_CONFIGURE}"
    return None


class Authenticator:
    """Checks an Authorization header against every accepted credential of its scheme."""

    def __init__(self, settings: Settings):
        tokens = [t for t in (secret(settings.webhook_token), secret(settings.webhook_token_previous)) if t]
        password = secret(settings.webhook_basic_password)
        basic = ([base64.b64encode(f"{settings.webhook_basic_user}:{password}".encode()).decode()]
                 if settings.webhook_basic_user and password else [])
        self._accepted: dict[str, tuple[bytes, ...]] = {
            scheme: tuple(value.encode() for value in values)
            for scheme, values in (("bearer", tokens), ("basic", basic)) if values
        }
        if not self._accepted:
            log.warning("receiver_auth_unconfigured every webhook POST is refused: %s", HOW_TO_CONFIGURE)

    @property
    def schemes(self) -> list[str]:
        """The HTTP auth schemes a sender may use, for the OpenAPI description."""
        return list(self._accepted)

    def allows(self, header: str | None) -> bool:
        """Whether the header carries an accepted credential. Each accepted value of the scheme is compared
        (no early exit), so the time taken does not say which one matched."""
        scheme, _, value = (header or "").partition(" ")
        accepted = self._accepted.get(scheme.lower())
        if not accepted:
            return False
        offered = value.strip().encode()
        matched = False
        for expected in accepted:
            matched |= hmac.compare_digest(offered, expected)
        return matched
