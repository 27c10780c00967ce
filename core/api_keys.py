"""API keys: generation, hashing and shape checks. Pure; storage is in core.store.api_keys.

A key is ``aft_live_`` or ``aft_test_`` followed by 43 base62 characters (256 bits from
the operating system's CSPRNG). Only its SHA-256 is stored; a fast hash is enough for a
secret with that much entropy. The prefix (with four secret characters) and the last four
characters are kept so people can tell their keys apart.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from core.permissions import ROLES  # noqa: F401  (re-exported: the roles a key may hold)

LIVE = "aft_live_"
TEST = "aft_test_"
SECRET_LENGTH = 43
KEY_LENGTH = len(LIVE) + SECRET_LENGTH
DISPLAY_PREFIX_LENGTH = len(LIVE) + 4

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_KEY_RE = re.compile(r"aft_(?:live|test)_[0-9A-Za-z]{%d}" % SECRET_LENGTH)


def generate_key(*, test: bool = False) -> str:
    return (TEST if test else LIVE) + "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_LENGTH))


def is_well_formed(presented: str) -> bool:
    """Cheap shape check, done before hashing or touching the database."""
    return len(presented) == KEY_LENGTH and _KEY_RE.fullmatch(presented) is not None


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("ascii")).digest()


def display_prefix(key: str) -> str:
    return key[:DISPLAY_PREFIX_LENGTH]


def last4(key: str) -> str:
    return key[-4:]
