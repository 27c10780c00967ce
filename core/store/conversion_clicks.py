"""The clicks postbacks name, read by the conversion worker (owner role, across
organizations) inside its batch transaction.

- ``load_clicks``: the stored clicks among the ids, with their offer's terms
  (``ClickFacts``). A click id carries its instant (``core.ids``), so each lookup reads
  one daily partition; an id that carries no instant we can hold is skipped.
- ``clicks_kept_from``: from when each organization keeps its clicks (retention): a
  missing click older than that is not worth waiting for (``core.attribution``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Collection, Iterable

import asyncpg
import msgspec

from core.attribution import id_instant
from core.caps import Caps
from core.commission import CommissionRules, Flat, GoalRule
from core.fraud_rules import FraudPolicy
from core.retention import CLICKS_RETENTION_DAYS_MAX, cutoff

_caps_decoder = msgspec.json.Decoder(Caps)
_policy_decoder = msgspec.json.Decoder(FraudPolicy)
_rules_decoder = msgspec.json.Decoder(CommissionRules)


class ClickFacts(msgspec.Struct, frozen=True, kw_only=True):
    click_id: str
    clicked_at: dt.datetime
    org_id: uuid.UUID
    offer_id: uuid.UUID
    affiliate_id: uuid.UUID
    link_id: uuid.UUID
    ip: str | None
    user_agent: str | None
    country: str | None
    device_type: str | None
    sub1: str | None  # as the rollups keep it: at most 100 characters, never empty
    advertiser_id: uuid.UUID  # the offer's
    attribution_window_s: int
    currency: str  # the offer's: revenue and payout are in it
    commission: CommissionRules
    caps: Caps
    fraud_policy: FraudPolicy


_CLICKS = """
select c.click_id, c.clicked_at, c.org_id, c.offer_id, c.affiliate_id, c.link_id, host(c.ip) as ip,
       c.user_agent, rtrim(c.country) as country, c.device_type, left(nullif(c.sub1, ''), 100) as sub1,
       o.advertiser_id, o.attribution_window_s, o.currency, o.commission::text as commission,
       o.caps::text as caps, o.fraud_policy::text as fraud_policy, o.revenue_minor, o.payout_minor,
       oa.payout_minor as affiliate_payout_minor
from unnest($1::text[], $2::timestamptz[]) as k (click_id, clicked_at)
join clicks c on c.click_id = k.click_id and c.clicked_at = k.clicked_at
join offers o on o.org_id = c.org_id and o.id = c.offer_id
left join offer_affiliates oa on oa.offer_id = c.offer_id and oa.affiliate_id = c.affiliate_id
"""


def offer_rules(row) -> CommissionRules:
    """The offer's commission rules; without any, its flat revenue and payout (with the
    affiliate's payout from its offer approval, when set, as an override)."""
    if row["commission"] is not None:
        return _rules_decoder.decode(row["commission"])
    payout = row["affiliate_payout_minor"] if row["affiliate_payout_minor"] is not None else row["payout_minor"]
    return CommissionRules(goals=(GoalRule(goal=None, revenue=Flat(row["revenue_minor"]), payout=Flat(payout)),))


async def load_clicks(conn: asyncpg.Connection, click_ids: Iterable[str | None]) -> dict[str, ClickFacts]:
    """The stored clicks among ``click_ids``, whoever's they are (ids not ours are skipped)."""
    instants = {c: id_instant(c) for c in set(click_ids) if c}
    ids = sorted(c for c, at in instants.items() if at is not None)
    if not ids:
        return {}
    rows = await conn.fetch(_CLICKS, ids, [instants[c] for c in ids])
    return {
        r["click_id"]: ClickFacts(
            click_id=r["click_id"], clicked_at=r["clicked_at"], org_id=r["org_id"], offer_id=r["offer_id"],
            affiliate_id=r["affiliate_id"], link_id=r["link_id"], ip=r["ip"], user_agent=r["user_agent"],
            country=r["country"], device_type=r["device_type"], sub1=r["sub1"], advertiser_id=r["advertiser_id"],
            attribution_window_s=r["attribution_window_s"],
            currency=r["currency"].strip(), commission=offer_rules(r), caps=_caps_decoder.decode(r["caps"]),
            fraud_policy=_policy_decoder.decode(r["fraud_policy"]),
        )
        for r in rows
    }


async def clicks_kept_from(
    conn: asyncpg.Connection, org_ids: Collection[uuid.UUID], now: dt.datetime,
) -> dict[uuid.UUID, dt.datetime]:
    """Each organization's clicks retention cutoff at ``now``; an organization not found
    gets the longest retention there is (the cutoff that rules out the least)."""
    if not org_ids:
        return {}
    rows = await conn.fetch("select id, clicks_retention_days from organizations where id = any($1::uuid[])",
                            list(org_ids))
    days = {r["id"]: r["clicks_retention_days"] for r in rows}
    return {org: cutoff(now.date(), days.get(org, CLICKS_RETENTION_DAYS_MAX)) for org in org_ids}
