"""The audit log's rules, from plain values: what a row holds, what it never holds, how long it stays.

An audit row says who (``actor_type``/``actor_id``), in which organization, did what
(``action``) to what (``target_type``/``target_id``), the target before and after,
and the request's correlation id, client address and user agent. It is written in the
same transaction as the change it records (``api.audit``); ``core.store.audit`` stores it.

Snapshots (``before``/``after``) are the records the domain returns, turned into JSON
values. Secrets never enter them: fields named in ``SECRET_FIELDS`` are dropped at any
depth, so even a record that carries a new API key (``ApiKeyCreated``) is logged
without it. Personal data a selector names (an IP, an email hash) is logged only as
its SHA-256 (``selector_digest``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from typing import Any, Literal

import msgspec

from core.retention import cutoff

ActorType = Literal["api_key", "user", "system"]

# At least a year: the floor the issue sets and the database enforces (migration 0006's
# trigger keeps younger rows even from the owner). Not an organization setting: nobody
# may keep the audit trail for less. Raising it is safe; lowering it does nothing.
AUDIT_RETENTION_DAYS = 365

USER_AGENT_MAX_LENGTH = 512
SECRET_FIELDS = frozenset({"key", "key_hash", "secret", "password"})


class AuditEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One audit row to write; the database sets ``id`` and ``occurred_at``."""

    org_id: uuid.UUID
    actor_type: ActorType
    actor_id: str
    action: str
    target_type: str
    target_id: str | None = None
    before: Any = None
    after: Any = None
    correlation_id: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None


def snapshot(value: Any) -> Any:
    """``value`` (a msgspec struct, dict, list or scalar) as JSON values, without secrets."""
    return _without_secrets(msgspec.to_builtins(value))


def _without_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_secrets(v) for k, v in value.items() if k not in SECRET_FIELDS}
    if isinstance(value, list):
        return [_without_secrets(v) for v in value]
    return value


def bounded_user_agent(user_agent: str | None) -> str | None:
    return user_agent[:USER_AGENT_MAX_LENGTH] if user_agent else None


def selector_digest(value: str) -> str:
    """The SHA-256 (hex) of a data subject's selector value, as the audit log keeps it.

    Unkeyed, so an operator can find the rows for an address by hashing it; the flip
    side is that a short value (an IPv4 address) can be recovered by trying them all.
    """
    return hashlib.sha256(value.encode()).hexdigest()


def audit_cutoff(today: dt.date) -> dt.datetime:
    """Audit rows older than this are past retention (kept at least ``AUDIT_RETENTION_DAYS``)."""
    return cutoff(today, AUDIT_RETENTION_DAYS)
