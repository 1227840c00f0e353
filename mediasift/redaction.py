"""Credentials kept out of third-party DEBUG logs.

botocore logs every request it sends at DEBUG with its headers (`Authorization: AWS4-HMAC-SHA256
Credential=<access key id>/…, Signature=…`, and a session's `X-Amz-Security-Token`), and each SigV4
signature on its own: replayable for minutes, and the access key with them. Anyone debugging with
`logging.DEBUG` would write them to a log. The filter here rewrites those records before any handler
sees them; everything else in them stays, so DEBUG logs remain useful.
"""

from __future__ import annotations

import logging
import re

REDACTED = "<redacted>"
_HEADER = re.compile(r"""(['"]?(?:Authorization|X-Amz-Security-Token)['"]?\s*:\s*b?['"])[^'"]*""", re.IGNORECASE)
_QUERY = re.compile(r"((?:X-Amz-Credential|X-Amz-Signature|X-Amz-Security-Token|Signature|AWSAccessKeyId)=)"
                    r"[^&\s'\"]+", re.IGNORECASE)
_SIGNATURE = re.compile(r"(Signature:\s*)[0-9a-f]{64}")
CREDENTIAL_LOGGERS = ("botocore.endpoint", "botocore.auth", "botocore.hooks", "urllib3.connectionpool")


class RedactCredentials(logging.Filter):
    """Rewrites a record's message with credential headers, query parameters and signatures replaced."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _SIGNATURE.sub(rf"\1{REDACTED}", _QUERY.sub(rf"\1{REDACTED}", _HEADER.sub(rf"\1{REDACTED}",
                                                                                             message)))
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def redact_credentials_in_logs() -> None:
    """Installs the filter on the loggers that write request credentials (once per process)."""
    for name in CREDENTIAL_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactCredentials) for f in logger.filters):
            logger.addFilter(RedactCredentials())
