"""The audit log's pure rules: snapshots without secrets, bounded user agents, digests, retention."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

import msgspec
import pytest

from core.audit import AUDIT_RETENTION_DAYS, audit_cutoff, bounded_user_agent, selector_digest, snapshot


class Key(msgspec.Struct):
    id: uuid.UUID
    last4: str
    key: str
    created_at: dt.datetime


KEY_ID = uuid.UUID(int=7)
CREATED = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize(("value", "expected"), [
    (None, None),
    (Key(KEY_ID, "abcd", "aft_live_secret", CREATED),
     {"id": str(KEY_ID), "last4": "abcd", "created_at": "2026-01-02T03:04:05Z"}),
    ({"rotated": {"key_hash": "00ff", "name": "n"}, "replacement": [{"key": "s", "id": 1}]},
     {"rotated": {"name": "n"}, "replacement": [{"id": 1}]}),
    ({"password": "p", "secret": "s", "token": "public"}, {"token": "public"}),
])
def test_snapshots_are_json_values_without_secrets(value, expected):
    assert snapshot(value) == expected


@pytest.mark.parametrize(("ua", "expected"), [(None, None), ("", None), ("ua", "ua"), ("u" * 600, "u" * 512)])
def test_user_agents_are_bounded(ua, expected):
    assert bounded_user_agent(ua) == expected


def test_selectors_are_kept_as_their_sha256():
    assert selector_digest("203.0.113.7") == hashlib.sha256(b"203.0.113.7").hexdigest()


def test_audit_rows_are_kept_at_least_a_year():
    assert AUDIT_RETENTION_DAYS >= 365
    today = dt.date(2030, 6, 15)
    assert audit_cutoff(today) == dt.datetime(2029, 6, 15, tzinfo=dt.timezone.utc)
    assert dt.datetime(2030, 6, 15, tzinfo=dt.timezone.utc) - audit_cutoff(today) >= dt.timedelta(days=365)
