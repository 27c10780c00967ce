"""Identifiers.

A click id is 48 bits of milliseconds since the epoch followed by 128 bits from the
operating system's CSPRNG, in lower-case hex: 44 URL-safe characters that sort in
time order and survive any advertiser's case folding.
"""

from __future__ import annotations

import os
import re
import secrets

CLICK_ID_LENGTH = 44
_CLICK_ID_RE = re.compile(r"[0-9a-f]{44}")


def new_click_id(now_ms: int) -> str:
    return "%012x" % now_ms + os.urandom(16).hex()


def click_id_time_ms(click_id: str) -> int:
    return int(click_id[:12], 16)


def is_click_id(value: str) -> bool:
    return _CLICK_ID_RE.fullmatch(value) is not None


def new_link_token() -> str:
    """A short public token for a tracking link (96 random bits, URL-safe)."""
    return secrets.token_urlsafe(12)
