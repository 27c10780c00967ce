"""Offers and per-affiliate approvals.

Every change here alters what the offer's links do at the edge; callers publish the
affected links' configs after the transaction commits (click caps are computed into
them, ``core.store.link_configs``).

An offer's rules are stored as JSON of their core structs, validated by them before
they are written: ``commission`` (``core.commission.CommissionRules``; None: the flat
``revenue_minor`` / ``payout_minor``, with the approval's ``payout_minor`` as
per-affiliate override), ``fraud_policy`` (``core.fraud_rules.FraudPolicy``) and
``caps`` (``core.caps.Caps``).

Making an offer active (created active, or its status changed to active) counts against
the plan's active offers (``core.plans``): the write is made, then the organization's
row is locked and the active offers counted, so concurrent activations in one
organization serialize and the last one over the limit is undone (``PlanLimitReached``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Callable, Literal, Mapping

import asyncpg
import msgspec

from core import catalog_rules as rules
from core.caps import NO_CAPS, Caps
from core.commission import CommissionRules
from core.errors import NotFound, ValidationError
from core.fraud_rules import FraudPolicy
from core.macros import validate_url_template
from core.plans import check_active_offers, plan_named

OfferStatus = Literal["active", "paused", "archived"]
ApprovalStatus = Literal["approved", "pending", "rejected", "blocked"]
OFFER_STATUSES = ("active", "paused", "archived")
APPROVAL_STATUSES = ("approved", "pending", "rejected", "blocked")


class Offer(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    org_id: uuid.UUID
    advertiser_id: uuid.UUID
    name: str
    status: str
    destination_url: str
    fallback_url: str | None
    currency: str
    payout_minor: int
    revenue_minor: int
    attribution_window_s: int
    requires_approval: bool
    geo_allow: list[str]
    geo_deny: list[str]
    created_at: dt.datetime
    updated_at: dt.datetime
    commission: CommissionRules | None = None
    fraud_policy: FraudPolicy = FraudPolicy()
    caps: Caps = NO_CAPS


def offer_from_row(**row: Any) -> Offer:
    """An ``Offer`` from its row: the JSON columns become their structs."""
    return msgspec.convert(row, Offer)


class OfferApproval(msgspec.Struct, frozen=True, kw_only=True):
    offer_id: uuid.UUID
    affiliate_id: uuid.UUID
    org_id: uuid.UUID
    status: str
    payout_minor: int | None
    destination_url: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


COLUMNS = (
    "id, org_id, advertiser_id, name, status, destination_url, fallback_url, currency, payout_minor,"
    " revenue_minor, attribution_window_s, requires_approval, geo_allow, geo_deny, created_at, updated_at,"
    " commission, fraud_policy, caps"
)
APPROVAL_COLUMNS = "offer_id, affiliate_id, org_id, status, payout_minor, destination_url, created_at, updated_at"


def _offer_status(status: str) -> str:
    if status not in OFFER_STATUSES:
        raise ValidationError("invalid_status", f"status must be one of {', '.join(OFFER_STATUSES)}")
    return status


def _optional_url(url: str | None) -> str | None:
    return None if url is None else validate_url_template(url)


def _money(what: str) -> Callable[[int], int]:
    return lambda v: rules.validate_money_minor(v, what)


def _rules(kind: type, what: str, *, nullable: bool = False) -> Callable[[Any], Any]:
    """Check a rules struct (or its JSON value) with its own type; return the JSON to store."""

    def check(value: Any) -> Any:
        if value is None and nullable:
            return None
        try:
            return msgspec.to_builtins(value if isinstance(value, kind) else msgspec.convert(value, kind))
        except msgspec.ValidationError as exc:
            raise ValidationError(f"invalid_{what}", f"{what}: {exc}") from None
        except ValidationError as exc:  # the struct's own checks
            raise ValidationError(exc.code, f"{what}: {exc.message}") from None

    return check


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "name": lambda v: rules.validate_name(v, "offer name"),
    "status": _offer_status,
    "destination_url": validate_url_template,
    "fallback_url": _optional_url,
    "currency": rules.validate_currency,
    "payout_minor": _money("payout_minor"),
    "revenue_minor": _money("revenue_minor"),
    "attribution_window_s": rules.validate_attribution_window_s,
    "requires_approval": bool,
    "geo_allow": lambda v: rules.validate_countries(v, "geo_allow"),
    "geo_deny": lambda v: rules.validate_countries(v, "geo_deny"),
    "commission": _rules(CommissionRules, "commission", nullable=True),
    "fraud_policy": _rules(FraudPolicy, "fraud_policy"),
    "caps": _rules(Caps, "caps"),
}


def _checked(changes: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(changes) - set(_CHECKS)
    if unknown:
        raise ValidationError("invalid_request", f"cannot set {', '.join(sorted(unknown))}")
    return {k: _CHECKS[k](v) for k, v in changes.items()}


def _check_geo_overlap(geo_allow: list[str], geo_deny: list[str]) -> None:
    rules.validate_geo(geo_allow, geo_deny)


async def create_offer(
    conn: asyncpg.Connection, org_id: uuid.UUID, advertiser_id: uuid.UUID, name: str, destination_url: str,
    **fields: Any,
) -> Offer:
    """Create an offer. ``fields``: any column in ``_CHECKS``; currency defaults to the org's."""
    values = _checked({"name": name, "destination_url": destination_url, **fields})
    _check_geo_overlap(values.get("geo_allow", []), values.get("geo_deny", []))
    currency = values.pop("currency", None)
    names = ", ".join(values)
    params = ", ".join(f"${n}" for n in range(4, 4 + len(values)))
    async with conn.transaction():  # a savepoint: over the plan's limit undoes the insert
        row = await conn.fetchrow(
            f"insert into offers (org_id, advertiser_id, currency, {names})"
            f" select a.org_id, a.id, coalesce($3, o.default_currency), {params}"
            f" from advertisers a join organizations o on o.id = a.org_id"
            f" where a.org_id = $1 and a.id = $2 returning {COLUMNS}",
            org_id, advertiser_id, currency, *values.values(),
        )
        if row is None:
            raise NotFound("not_found", "advertiser not found")
        offer = offer_from_row(**dict(row))
        if offer.status == "active":
            await _check_active_offers_limit(conn, org_id)
    return offer


async def update_offer(
    conn: asyncpg.Connection, org_id: uuid.UUID, offer_id: uuid.UUID, changes: Mapping[str, Any]
) -> Offer:
    """Apply ``changes`` (pause/activate is ``{"status": ...}``); another org's id is NotFound."""
    values = _checked(changes)
    assignments = "".join(f", {column} = ${n}" for n, column in enumerate(values, start=3))
    async with conn.transaction():  # a savepoint inside the caller's transaction
        activating = values.get("status") == "active" and await conn.fetchval(
            "select status <> 'active' from offers where org_id = $1 and id = $2 for update", org_id, offer_id
        )
        row = await conn.fetchrow(
            f"update offers set updated_at = now(){assignments} where org_id = $1 and id = $2 returning {COLUMNS}",
            org_id, offer_id, *values.values(),
        )
        if row is None:
            raise NotFound("not_found", "offer not found")
        offer = offer_from_row(**dict(row))
        _check_geo_overlap(offer.geo_allow, offer.geo_deny)  # the merged lists; raising undoes the update
        if activating:
            await _check_active_offers_limit(conn, org_id)
    return offer


async def _check_active_offers_limit(conn: asyncpg.Connection, org_id: uuid.UUID) -> None:
    """After an offer became active: raise ``PlanLimitReached`` if that is one too many.

    The organization's row lock serializes activations: a concurrent one waits here until
    this transaction ends, then counts this offer too. FOR NO KEY UPDATE, not FOR UPDATE:
    inserts referencing the organization hold FOR KEY SHARE on it (the foreign key), and
    two of those each waiting for FOR UPDATE would deadlock.
    """
    plan = await conn.fetchval("select plan from organizations where id = $1 for no key update", org_id)
    active = await conn.fetchval("select count(*) from offers where org_id = $1 and status = 'active'", org_id)
    check_active_offers(plan_named(plan), active)


async def set_offer_approval(
    conn: asyncpg.Connection, org_id: uuid.UUID, offer_id: uuid.UUID, affiliate_id: uuid.UUID,
    status: ApprovalStatus, *, payout_minor: int | None = None, destination_url: str | None = None,
) -> OfferApproval:
    """Set (replace) an affiliate's approval and overrides on an offer."""
    if status not in APPROVAL_STATUSES:
        raise ValidationError("invalid_status", f"status must be one of {', '.join(APPROVAL_STATUSES)}")
    if payout_minor is not None:
        rules.validate_money_minor(payout_minor, "payout_minor")
    row = await conn.fetchrow(
        f"insert into offer_affiliates (org_id, offer_id, affiliate_id, status, payout_minor, destination_url)"
        f" select o.org_id, o.id, a.id, $4, $5, $6 from offers o"
        f" join affiliates a on a.org_id = o.org_id and a.id = $3"
        f" where o.org_id = $1 and o.id = $2"
        f" on conflict (offer_id, affiliate_id) do update set status = excluded.status,"
        f" payout_minor = excluded.payout_minor, destination_url = excluded.destination_url, updated_at = now()"
        f" returning {APPROVAL_COLUMNS}",
        org_id, offer_id, affiliate_id, status, payout_minor, _optional_url(destination_url),
    )
    if row is None:
        missing = await _missing(conn, org_id, offer_id, affiliate_id)
        raise NotFound("not_found", f"{missing} not found")
    return OfferApproval(**dict(row))


async def _missing(conn: asyncpg.Connection, org_id: uuid.UUID, offer_id: uuid.UUID, affiliate_id: uuid.UUID) -> str:
    offer_exists = await conn.fetchval("select exists(select 1 from offers where org_id = $1 and id = $2)", org_id, offer_id)
    return "affiliate" if offer_exists else "offer"
