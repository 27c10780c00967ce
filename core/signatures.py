"""AffTok request signatures, for outgoing webhooks and incoming postbacks.

The header (``AffTok-Signature`` on postbacks, the same value on webhooks) reads
``t=<unix seconds>,v1=<hex hmac-sha256 of "<t>.<raw body>">``. A sender rotating its
secret sends one ``v1`` per secret (``t=…,v1=<new>,v1=<old>``); any one matching is
enough. Other ``v<n>`` schemes are ignored so a later scheme can be added beside ``v1``.
The timestamp must lie within ``window_s`` of the receiver's clock in either direction,
which bounds how long a captured request can be replayed.

``verify`` raises ``Unauthorized`` and nothing else, whatever the header holds, with one
of the codes below so a sender can tell a broken integration from a stale clock.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from core.errors import Unauthorized

SIGNATURE_HEADER = "AffTok-Signature"
SIGNATURE_HEADER_MAX_LENGTH = 1024
SIGNATURE_WINDOW_S = 300

MALFORMED = "signature_malformed"
OUTSIDE_WINDOW = "signature_outside_window"
MISMATCH = "signature_mismatch"
NOT_CONFIGURED = "signature_not_configured"

_TIMESTAMP_RE = re.compile(r"[0-9]{1,12}")
_V1_RE = re.compile(r"[0-9a-fA-F]{64}")
_OTHER_SCHEME_RE = re.compile(r"v[0-9]{1,3}")


def sign(secret: bytes, body: bytes, now_s: int) -> str:
    """The signature header value for ``body`` sent at ``now_s``."""
    return sign_all([secret], body, now_s)


def sign_all(secrets: list[bytes], body: bytes, now_s: int) -> str:
    """The header signed by every live secret (newest first) while one is rotated out."""
    if not secrets or not all(secrets):
        raise ValueError("a non-empty signing secret is required")
    return f"t={now_s}," + ",".join(f"v1={_digest(s, str(now_s), body)}" for s in secrets)


def verify(secret: bytes, header: str, body: bytes, now_s: int, window_s: int = SIGNATURE_WINDOW_S) -> None:
    """Return if ``header`` signs ``body`` with ``secret`` within ``window_s`` of ``now_s``."""
    if not secret:
        raise Unauthorized(NOT_CONFIGURED, "no signing secret is configured for this sender")
    timestamp, candidates = _parse(header)
    if abs(now_s - int(timestamp)) > window_s:
        raise Unauthorized(OUTSIDE_WINDOW, f"signature timestamp is more than {window_s} s from the server clock")
    expected = _digest(secret, timestamp, body)
    matched = False
    for candidate in candidates:  # compare every entry: no early exit to time
        matched |= hmac.compare_digest(expected, candidate.lower())
    if not matched:
        raise Unauthorized(MISMATCH, "signature does not match the request body")


def _parse(header: object) -> tuple[str, list[str]]:
    if not isinstance(header, str) or not header:
        raise _malformed("signature header is missing")
    if len(header) > SIGNATURE_HEADER_MAX_LENGTH:
        raise _malformed(f"signature header is longer than {SIGNATURE_HEADER_MAX_LENGTH} characters")
    timestamp: str | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip(" ").partition("=")
        if key == "t" and sep and _TIMESTAMP_RE.fullmatch(value):
            if timestamp is not None:
                raise _malformed("signature header has more than one t=")
            timestamp = value
        elif key == "v1" and sep and _V1_RE.fullmatch(value):
            candidates.append(value)
        elif key == "v1" or not sep or not _OTHER_SCHEME_RE.fullmatch(key):
            raise _malformed("signature header must read t=<unix seconds>,v1=<64 hex characters>")
    if timestamp is None or not candidates:
        raise _malformed("signature header needs one t= and at least one v1=")
    return timestamp, candidates


def _digest(secret: bytes, timestamp: str, body: bytes) -> str:
    return hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def _malformed(message: str) -> Unauthorized:
    return Unauthorized(MALFORMED, message)
