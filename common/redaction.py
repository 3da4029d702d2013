"""Credentials kept out of every message: the user information and secret query parameters of
URIs are masked before a URI goes into a message, a log line, a tag or a result."""

from __future__ import annotations

import logging
import re

# user:password@ after a scheme, up to the last @ before the path (a password may hold an @).
_USER_INFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")
# The value of a query parameter whose name says it carries a secret (?token=, &X-Amz-Signature=).
_SECRET_PARAMETER = re.compile(
    r"(?P<name>[?&;][^=&#\s]*(?:token|key|secret|passw|pwd|sig|credential|auth)[^=&#\s]*=)"
    r"[^&#\s]*",
    re.IGNORECASE,
)


def redact_uri(text: str) -> str:
    """``text`` (a URI, or a message quoting URIs) with the credentials of every URI in it
    masked: user information (``user:password@`` becomes ``***@``) and the values of query
    parameters that carry secrets (``?token=...`` becomes ``?token=***``). Use it on anything
    that may hold a URI before it goes into a message, a log line, a tag or a result."""
    text = _USER_INFO.sub(r"\g<scheme>***@", text)
    return _SECRET_PARAMETER.sub(r"\g<name>***", text)


class RedactingFilter(logging.Filter):
    """Masks the credentials of URIs in the messages of the logger it is added to
    (``redact_uri``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_uri(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
