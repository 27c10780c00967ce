"""Who may do what: the one permission table, the principal, and the scoping rule.

Every API route names an action (``"offers:write"``); ``authorize`` is the only place an
action is checked against a role. To add an action: add it to ``ACTIONS`` and grant it to
roles in ``PERMISSIONS`` (owner and admin receive new actions automatically).

Roles:

- ``owner``: everything, including keys of any role (owner keys included).
- ``admin``: everything except ``organization:manage``; so it may not grant owner power.
- ``manager``: reads and writes the catalog (advertisers, affiliates, offers, links)
  and conversions (reads them, changes their status by hand, sends postbacks), and
  the outbound webhooks and affiliate postbacks (``webhooks:*``).
- ``analyst``: read-only.
- ``advertiser``: scoped to one advertiser: its own offers and the links to them, and
  its own conversions (it may send them: ``conversions:send``, used by the edge).
- ``affiliate``: scoped to one affiliate: its own links and the offers open to it
  (approved on the offer, or the offer does not require approval), and the
  conversions of its own clicks. It manages its own postback templates and webhooks
  (``webhooks:*``) and sees their deliveries, never the organization's own webhooks.

Scoped roles never write catalog objects. Granting a key (create, rotate, revoke) is
allowed only for a role whose actions are a subset of the granter's: nobody hands out
more power than they hold.
"""

from __future__ import annotations

import uuid
from typing import Literal

import msgspec

from core.errors import Forbidden, ValidationError

ROLES = ("owner", "admin", "manager", "analyst", "advertiser", "affiliate")
Role = Literal["owner", "admin", "manager", "analyst", "advertiser", "affiliate"]
ActorType = Literal["api_key", "user"]

_CATALOG = ("advertisers", "affiliates", "offers", "links")
CATALOG_READ = frozenset(f"{c}:read" for c in _CATALOG)
CATALOG_WRITE = frozenset(f"{c}:write" for c in _CATALOG)

ACTIONS: frozenset[str] = CATALOG_READ | CATALOG_WRITE | frozenset({
    "api_keys:read",
    "api_keys:manage",
    "audit:read",
    "privacy:manage",
    "usage:read",
    "organization:read",
    "organization:manage",
    "conversions:read",
    "conversions:write",  # change a conversion's status by hand
    "conversions:send",  # report conversions to the edge's /postback with this API key
    "clicks:read",  # list clicks (scoped roles: their own, without the visitor's address)
    "exports:run",  # streamed and background exports; each also needs its kind's read action
    "stats:read",  # GET /v1/stats (scoped roles: their own traffic, without the other side's money)
    "webhooks:read",  # webhooks, affiliate postbacks and their deliveries (affiliate: its own)
    "webhooks:write",  # create, change, delete them, rotate secrets, replay deliveries
})

PERMISSIONS: dict[str, frozenset[str]] = {
    "owner": ACTIONS,
    "admin": ACTIONS - {"organization:manage"},
    "manager": CATALOG_READ | CATALOG_WRITE | {
        "usage:read", "conversions:read", "conversions:write", "conversions:send", "clicks:read", "exports:run",
        "stats:read", "webhooks:read", "webhooks:write",
    },
    "analyst": CATALOG_READ | {
        "usage:read", "conversions:read", "clicks:read", "exports:run", "stats:read", "webhooks:read",
    },
    "advertiser": frozenset({
        "offers:read", "links:read", "conversions:read", "conversions:send", "clicks:read", "exports:run", "stats:read",
    }),
    "affiliate": frozenset({
        "offers:read", "links:read", "conversions:read", "clicks:read", "exports:run", "stats:read", "webhooks:read",
        "webhooks:write",
    }),
}

# The column each scoped role is pinned to; every other role is organization-wide.
SCOPE_FIELD = {"advertiser": "advertiser_id", "affiliate": "affiliate_id"}


class Scope(msgspec.Struct, frozen=True, kw_only=True):
    """What part of the organization a principal sees; both None = all of it."""

    advertiser_id: uuid.UUID | None = None
    affiliate_id: uuid.UUID | None = None

    @property
    def is_scoped(self) -> bool:
        return self.advertiser_id is not None or self.affiliate_id is not None


UNSCOPED = Scope()


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """The caller of one request: an API key or a dashboard user of one organization."""

    org_id: uuid.UUID
    role: str
    actor_type: ActorType
    actor_id: str  # the key's id, or the user's ``sub``
    scope: Scope = UNSCOPED

    @property
    def key_id(self) -> uuid.UUID | None:
        return uuid.UUID(self.actor_id) if self.actor_type == "api_key" else None


def scope_for(role: str, advertiser_id: uuid.UUID | None = None, affiliate_id: uuid.UUID | None = None) -> Scope:
    """The scope a role with these ids has; the scoped roles need exactly their own id."""
    if role not in PERMISSIONS:
        raise ValidationError("invalid_role", f"role must be one of {', '.join(ROLES)}")
    given = {"advertiser_id": advertiser_id, "affiliate_id": affiliate_id}
    needed = SCOPE_FIELD.get(role)
    for field, value in given.items():
        if field == needed and value is None:
            raise ValidationError("invalid_scope", f"role {role} needs {field}")
        if field != needed and value is not None:
            raise ValidationError("invalid_scope", f"role {role} does not take {field}")
    return Scope(advertiser_id=advertiser_id, affiliate_id=affiliate_id)


def allows(role: str, action: str) -> bool:
    return action in PERMISSIONS.get(role, frozenset())


def authorize(principal: Principal, action: str) -> None:
    if not allows(principal.role, action):
        raise Forbidden("forbidden", f"role {principal.role} may not {action}")


def may_grant(granter_role: str, role: str) -> bool:
    """A role may hand out (or rotate, or revoke) keys of ``role`` only if it holds all its power."""
    return (
        allows(granter_role, "api_keys:manage")
        and granter_role not in SCOPE_FIELD
        and PERMISSIONS.get(role, ACTIONS | {"?"}) <= PERMISSIONS[granter_role]
    )


def authorize_grant(principal: Principal, role: str) -> None:
    if not may_grant(principal.role, role):
        raise Forbidden("forbidden", f"role {principal.role} may not manage keys with role {role}")
