"""Request and response bodies of the HTTP API, validated once at the boundary.

Requests forbid unknown fields and bound every string, number and list. Records the
domain returns (``core.store.*``) are encoded as they are; only API-specific shapes
(pages, links with their tracking URL, errors) are defined here.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from core.caps import Caps
from core.catalog_rules import ATTRIBUTION_WINDOW_MAX_S, ATTRIBUTION_WINDOW_MIN_S, MONEY_MAX_MINOR
from core.commission import CommissionRules
from core.exports import ClickFilters
from core.fraud_rules import FraudPolicy
from core.offer_views import PayoutRule
from core.permissions import Role
from core.plans import Plan
from core.retention import (
    CLICKS_RETENTION_DAYS_MAX, CLICKS_RETENTION_DAYS_MIN, CONVERSIONS_RETENTION_DAYS_MAX,
    CONVERSIONS_RETENTION_DAYS_MIN,
)
from core.store.advertisers import Advertiser
from core.store.api_keys import GRACE_PERIOD_MAX, REASON_MAX_LENGTH, ApiKey
from core.store.audit import AuditEntry
from core.store.affiliates import Affiliate
from core.store.links import Link
from core.store.offers import Offer
from core.store.postback_secrets import SIGNING_SECRET_GRACE, SIGNING_SECRET_GRACE_MAX, SigningSecretInfo
from core.store.usage import UsageMonth

Name = Annotated[str, Meta(min_length=1, max_length=200)]
Email = Annotated[str, Meta(min_length=3, max_length=320)]
Url = Annotated[str, Meta(min_length=1, max_length=2048, description="absolute http(s) URL; macros only after the host")]
MoneyMinor = Annotated[int, Meta(ge=0, le=MONEY_MAX_MINOR, description="integer minor units (cents)")]
Currency = Annotated[str, Meta(pattern="^[A-Z]{3}$", description="ISO 4217 code")]
Country = Annotated[str, Meta(pattern="^[A-Z]{2}$", description="ISO 3166-1 alpha-2 code")]
Countries = Annotated[list[Country], Meta(max_length=300)]
WindowS = Annotated[int, Meta(ge=ATTRIBUTION_WINDOW_MIN_S, le=ATTRIBUTION_WINDOW_MAX_S)]
Limit = Annotated[int, Meta(ge=1, le=200)]
Cursor = Annotated[str, Meta(max_length=200)]
OfferStatus = Literal["active", "paused", "archived"]
AffiliateStatus = Literal["active", "inactive", "banned"]
ApprovalStatus = Literal["approved", "pending", "rejected", "blocked"]


class Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body and query: unknown fields are an error, not ignored."""


class AdvertiserCreate(Body):
    name: Name
    status: Literal["active", "inactive"] = "active"


class AffiliateCreate(Body):
    name: Name
    email: Email | None = None
    status: AffiliateStatus = "active"


class AffiliatePatch(Body):
    name: Name | UnsetType = UNSET
    email: Email | None | UnsetType = UNSET
    status: AffiliateStatus | UnsetType = UNSET


class OfferCreate(Body):
    advertiser_id: uuid.UUID
    name: Name
    destination_url: Url
    fallback_url: Url | None = None
    status: Literal["active", "paused"] = "active"
    currency: Currency | UnsetType = UNSET  # default: the organization's currency
    payout_minor: MoneyMinor = 0
    revenue_minor: MoneyMinor = 0
    attribution_window_s: WindowS = 30 * 24 * 3600
    requires_approval: bool = False
    geo_allow: Countries = []
    geo_deny: Countries = []
    commission: CommissionRules | None | UnsetType = UNSET  # None: flat payout_minor / revenue_minor
    fraud_policy: FraudPolicy | UnsetType = UNSET  # default: every rule flags, none rejects
    caps: Caps | UnsetType = UNSET  # default: no caps


class OfferPatch(Body):
    name: Name | UnsetType = UNSET
    status: OfferStatus | UnsetType = UNSET
    destination_url: Url | UnsetType = UNSET
    fallback_url: Url | None | UnsetType = UNSET
    currency: Currency | UnsetType = UNSET
    payout_minor: MoneyMinor | UnsetType = UNSET
    revenue_minor: MoneyMinor | UnsetType = UNSET
    attribution_window_s: WindowS | UnsetType = UNSET
    requires_approval: bool | UnsetType = UNSET
    geo_allow: Countries | UnsetType = UNSET
    geo_deny: Countries | UnsetType = UNSET
    commission: CommissionRules | None | UnsetType = UNSET  # replaces the rules whole
    fraud_policy: FraudPolicy | UnsetType = UNSET  # replaces the policy whole
    caps: Caps | UnsetType = UNSET  # replaces the caps whole; republishes the offer's links


class ApprovalPut(Body):
    """The whole approval: omitted overrides are cleared."""

    status: ApprovalStatus
    payout_minor: MoneyMinor | None = None
    destination_url: Url | None = None


class LinkCreate(Body):
    offer_id: uuid.UUID
    affiliate_id: uuid.UUID


class PageQuery(Body):
    limit: Limit = 50
    cursor: Cursor | None = None


class OfferQuery(PageQuery):
    status: OfferStatus | None = None
    advertiser_id: uuid.UUID | None = None


class LinkQuery(PageQuery):
    offer_id: uuid.UUID | None = None
    affiliate_id: uuid.UUID | None = None


class LinkOut(Link, kw_only=True):
    tracking_url: str | None = None


class AdvertiserPage(msgspec.Struct, kw_only=True):
    data: list[Advertiser]
    next_cursor: str | None = None


class AffiliatePage(msgspec.Struct, kw_only=True):
    data: list[Affiliate]
    next_cursor: str | None = None


class OfferView(msgspec.Struct, frozen=True, kw_only=True):
    """An offer as the caller may read it. An affiliate is shown what it earns (its own
    payout override, else the offer's; with commission rules, ``payout_rules``: its payout
    per goal) and never what the advertiser pays, who the advertiser is, the landing URLs
    its tracking link stands in front of, the fraud policy or the caps; those fields are
    absent from its answers. Everyone else sees the whole offer."""

    id: uuid.UUID
    org_id: uuid.UUID
    name: str
    status: str
    currency: str
    payout_minor: int
    attribution_window_s: int
    requires_approval: bool
    geo_allow: list[str]
    geo_deny: list[str]
    created_at: dt.datetime
    updated_at: dt.datetime
    advertiser_id: uuid.UUID | UnsetType = UNSET
    revenue_minor: int | UnsetType = UNSET
    destination_url: str | UnsetType = UNSET
    fallback_url: str | None | UnsetType = UNSET
    commission: CommissionRules | None | UnsetType = UNSET
    fraud_policy: FraudPolicy | UnsetType = UNSET
    caps: Caps | UnsetType = UNSET
    payout_rules: list[PayoutRule] | UnsetType = UNSET  # affiliates only, when the offer has commission rules


class OfferPage(msgspec.Struct, kw_only=True):
    data: list[OfferView]
    next_cursor: str | None = None


class LinkPage(msgspec.Struct, kw_only=True):
    data: list[LinkOut]
    next_cursor: str | None = None


class Health(msgspec.Struct, kw_only=True):
    status: str


class ErrorBody(msgspec.Struct, kw_only=True):
    code: str
    message: str
    correlation_id: str


def given_fields(body: msgspec.Struct) -> dict:
    """The fields a request actually set (PATCH semantics)."""
    return {f: v for f in body.__struct_fields__ if (v := getattr(body, f)) is not UNSET}


# API keys (/v1/admin/api-keys).

class ApiKeyCreate(Body):
    name: Name
    role: Role
    advertiser_id: uuid.UUID | None = None  # required for role advertiser, refused otherwise
    affiliate_id: uuid.UUID | None = None  # required for role affiliate, refused otherwise
    expires_at: Annotated[dt.datetime, Meta(tz=True)] | None = None
    test: bool = False  # an aft_test_ key


class ApiKeyRotate(Body):
    grace_period_s: Annotated[int, Meta(ge=0, le=int(GRACE_PERIOD_MAX.total_seconds()), description=(
        "how long the old key keeps working"
    ))] = 86400


class ApiKeyRevoke(Body):
    reason: Annotated[str, Meta(min_length=1, max_length=REASON_MAX_LENGTH)]


class ApiKeyCreated(ApiKey, kw_only=True):
    """A new key's record and, this once, the key itself."""

    key: str


class ApiKeyPage(msgspec.Struct, kw_only=True):
    data: list[ApiKey]
    next_cursor: str | None = None


# Audit log (/v1/audit-log), organization settings (/v1/organization), data subject
# rights (/v1/privacy/*).

ShortText = Annotated[str, Meta(min_length=1, max_length=200)]
Since = Annotated[dt.datetime, Meta(tz=True, description="inclusive")]
Until = Annotated[dt.datetime, Meta(tz=True, description="exclusive")]


class AuditLogQuery(PageQuery):
    action: ShortText | None = None  # e.g. offers.update
    target_type: ShortText | None = None
    target_id: ShortText | None = None
    actor_id: ShortText | None = None
    since: Since | None = None
    until: Until | None = None


class AuditLogPage(msgspec.Struct, kw_only=True):
    data: list[AuditEntry]
    next_cursor: str | None = None


class OrganizationPatch(Body):
    ip_truncate: bool | UnsetType = UNSET
    clicks_retention_days: Annotated[
        int, Meta(ge=CLICKS_RETENTION_DAYS_MIN, le=CLICKS_RETENTION_DAYS_MAX)] | UnsetType = UNSET
    conversions_retention_days: Annotated[
        int, Meta(ge=CONVERSIONS_RETENTION_DAYS_MIN, le=CONVERSIONS_RETENTION_DAYS_MAX)] | UnsetType = UNSET


class OrganizationOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    plan: str
    default_currency: str
    created_at: dt.datetime
    ip_truncate: bool
    clicks_retention_days: int
    conversions_retention_days: int


class PrivacySubjectIn(Body):
    """Exactly one selector of a data subject."""

    click_id: Annotated[str, Meta(pattern="^[0-9a-f]{44}$")] | None = None
    ip: Annotated[str, Meta(min_length=2, max_length=45, description="IPv4 or IPv6 address")] | None = None
    customer_id: ShortText | None = None
    email_sha256: Annotated[str, Meta(pattern="^[0-9a-fA-F]{64}$", description=(
        "SHA-256 (hex) of the lower-cased, trimmed email address"
    ))] | None = None


# Usage (/v1/usage).

class UsageReport(msgspec.Struct, kw_only=True):
    """The organization's plan and how much of it is used; months are UTC, named by their first day."""

    plan: Plan
    month: dt.date  # the current month
    events: int  # tracked events this month
    overage_events: int  # of them, those past the plan's monthly limit (billed as overage)
    active_offers: int
    months: list[UsageMonth]  # the last 12 months, the current one first, months without events as 0


# Advertisers' postback credentials (/v1/advertisers/{id}/postback-token, .../signing-secrets).

class AdvertiserOut(Advertiser, kw_only=True):
    """An advertiser and the GET postback URL its server calls: put the token issued by
    ``POST /v1/advertisers/{id}/postback-token`` in place of ``{postback_token}`` (the token
    is not stored, so it cannot be shown again); None when no public edge URL is set."""

    postback_url_template: str | None = None


class AdvertiserOutPage(msgspec.Struct, kw_only=True):
    data: list[AdvertiserOut]
    next_cursor: str | None = None


class PostbackTokenIssue(Body):
    """No options: send ``{}``. The previous token stops working at once."""


class SigningSecretCreate(Body):
    grace_period_s: Annotated[int, Meta(ge=0, le=int(SIGNING_SECRET_GRACE_MAX.total_seconds()), description=(
        "how long the secrets current until now keep verifying"
    ))] = int(SIGNING_SECRET_GRACE.total_seconds())


class PostbackTokenIssued(msgspec.Struct, kw_only=True):
    """A new postback token, in this response only; the previous one no longer works."""

    advertiser_id: uuid.UUID
    postback_token: str
    postback_token_last4: str
    postback_url: str | None = None  # the GET postback URL with this token in it


class SigningSecretCreated(SigningSecretInfo, kw_only=True):
    """A new current signing secret, in this response only. The secrets current until now
    keep verifying until their ``expires_at`` (``grace_period_s``, 24 hours unless told):
    switch the sender over meanwhile."""

    secret: str


class SigningSecretList(msgspec.Struct, kw_only=True):
    data: list[SigningSecretInfo]  # those that verify signatures now, newest first


# Conversions (/v1/conversions). Fields a role may not see are absent (api.conversion_queries).

ConversionStatus = Literal["pending", "approved", "rejected", "reversed"]


class ConversionQuery(PageQuery):
    status: ConversionStatus | None = None
    offer_id: uuid.UUID | None = None
    affiliate_id: uuid.UUID | None = None
    advertiser_id: uuid.UUID | None = None
    click_id: ShortText | None = None
    external_id: ShortText | None = None
    reason: ShortText | None = None  # e.g. unknown_click, cap_reached, a fraud rule's code
    created_from: Since | None = None
    created_to: Until | None = None


class ConversionView(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    org_id: uuid.UUID
    click_id: str | None  # null: no click of this organization matched (reason unknown_click)
    clicked_at: dt.datetime | None
    offer_id: uuid.UUID | None
    affiliate_id: uuid.UUID | None
    link_id: uuid.UUID | None
    goal: str | None
    status: str
    reason: str | None
    fraud_flags: list[str]  # every fraud rule that fired, flag or reject
    currency: str | None  # of revenue and payout: the offer's
    country: str | None
    source: str  # postback | pixel
    received_at: dt.datetime  # when the edge accepted the first postback
    created_at: dt.datetime
    updated_at: dt.datetime
    advertiser_id: uuid.UUID | UnsetType = UNSET
    external_id: str | UnsetType = UNSET  # the advertiser's order id
    sale_amount_minor: int | None | UnsetType = UNSET
    sale_currency: str | None | UnsetType = UNSET
    revenue_minor: int | UnsetType = UNSET  # what the advertiser owes (earned once approved)
    payout_minor: int | UnsetType = UNSET  # what the affiliate earns (earned once approved)
    rule_applied: str | None | UnsetType = UNSET
    product_id: str | None | UnsetType = UNSET
    order_id: str | None | UnsetType = UNSET
    customer_id: str | None | UnsetType = UNSET
    metadata: dict | None | UnsetType = UNSET
    ip: str | None | UnsetType = UNSET
    user_agent: str | None | UnsetType = UNSET
    postback_id: str | UnsetType = UNSET


class StatusChangeView(msgspec.Struct, kw_only=True):
    """One status a conversion took; the deltas are what the move changed in earned money."""

    id: int
    from_status: str | None  # null: created
    to_status: str
    reason: str | None
    currency: str | None
    correlation_id: str | None
    created_at: dt.datetime
    actor: str | UnsetType = UNSET  # postback:token, postback:signature, api_key:<id>, user:<sub>, pixel, system
    revenue_delta_minor: int | UnsetType = UNSET
    payout_delta_minor: int | UnsetType = UNSET


class ConversionDetail(ConversionView, kw_only=True):
    history: list[StatusChangeView]  # oldest first


class ConversionPage(msgspec.Struct, kw_only=True):
    data: list[ConversionView]
    next_cursor: str | None = None


class ConversionStatusChange(Body):
    """An operator's move: approve or reject a pending conversion, reverse an approved one."""

    status: Literal["approved", "rejected", "reversed"]
    reason: Annotated[str, Meta(min_length=1, max_length=500)]


class ClickQuery(ClickFilters, kw_only=True):
    """GET /v1/clicks: the clicks filters (core.exports.ClickFilters) and a page."""

    limit: Limit = 50
    cursor: Cursor | None = None


class ClickView(msgspec.Struct, kw_only=True):
    click_id: str
    clicked_at: str  # ISO 8601, UTC
    offer_id: str
    affiliate_id: str
    link_id: str
    outcome: str  # redirect, or why the visitor was not sent to the offer (fallback_*, unavailable)
    sub1: str | None
    sub2: str | None
    sub3: str | None
    sub4: str | None
    sub5: str | None
    source_id: str | None
    country: str | None
    device_type: str | None
    referer: str | None
    ip: str | None | UnsetType = UNSET  # organization-wide roles only
    user_agent: str | None | UnsetType = UNSET


class ClickPage(msgspec.Struct, kw_only=True):
    data: list[ClickView]
    next_cursor: str | None = None


class ExportJobOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    kind: str
    format: str
    status: str  # queued | running | done | failed
    rows_written: int
    rows_total: int | None  # counted when the job starts
    bytes_written: int
    error: str | None
    filters: dict
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    expires_at: dt.datetime  # the file and the job are deleted after this
    download_url: str | None  # set when done


# Statistics (/v1/stats; core.stats plans the query, api.stats_queries reads the rollups).
# Fields for measures not asked or not visible to the caller's role are absent.


class StatsKey(msgspec.Struct, kw_only=True):
    """A row's group: the time key in the query's zone, and the dimensions grouped by (null: none, e.g. the
    offer of a conversion no click matched)."""

    hour: str | UnsetType = UNSET  # 2026-11-01T05:30:00+05:30, the local hour's start
    day: str | UnsetType = UNSET  # 2026-11-01
    week: str | UnsetType = UNSET  # 2026-10-26, its Monday
    month: str | UnsetType = UNSET  # 2026-11
    offer_id: str | None | UnsetType = UNSET
    advertiser_id: str | None | UnsetType = UNSET
    affiliate_id: str | None | UnsetType = UNSET
    goal: str | None | UnsetType = UNSET
    country: str | None | UnsetType = UNSET
    device: str | None | UnsetType = UNSET
    sub1: str | None | UnsetType = UNSET  # '(other)': past the offer's bounded set of sub1 values


class StatsConversions(msgspec.Struct, kw_only=True):
    """Conversions by current status, counted in the bucket they were received in."""

    pending: int
    approved: int
    rejected: int
    reversed: int
    total: int


class StatsMoney(msgspec.Struct, kw_only=True):
    """Earned (approved) money in one currency; never summed across currencies."""

    currency: str
    revenue_minor: int | UnsetType = UNSET
    payout_minor: int | UnsetType = UNSET
    profit_minor: int | UnsetType = UNSET
    epc: str | None | UnsetType = UNSET  # payout per click in major units (exponent + 2 places); null: no clicks


class StatsTotals(msgspec.Struct, kw_only=True):
    clicks: int | UnsetType = UNSET
    unique_clicks: int | UnsetType = UNSET  # first click of a visitor on an offer in a UTC day
    conversions: StatsConversions | UnsetType = UNSET
    fraud_flagged: int | UnsetType = UNSET  # conversions created with a fraud flag (with conversions)
    conversion_rate: str | None | UnsetType = UNSET  # approved / clicks, 6 places; null: no clicks
    money: list[StatsMoney] | UnsetType = UNSET  # one entry per currency, by code


class StatsRow(StatsTotals, kw_only=True):
    key: StatsKey


class StatsQueryEcho(msgspec.Struct, kw_only=True, rename={"from_": "from"}):
    """The query as resolved: the range as local datetimes in tz, [from, to)."""

    from_: str
    to: str
    tz: str
    group_by: list[str]
    measures: list[str]


class StatsPage(msgspec.Struct, kw_only=True):
    data: list[StatsRow]
    totals: StatsTotals
    next_cursor: str | None
    query: StatsQueryEcho
