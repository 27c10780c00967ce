"""Seeded raw rows (pure): the clicks and conversions of the recent window, one by one,
as the ingest and conversion workers would have stored them, counted into the rollups
from these very rows so the window's rollups equal their aggregation.

A click's visitor is new, or (15 %) one who clicked the same link before, with the same
address, user agent, country and device; a click is unique when it is its visitor's
first on the offer that UTC day (in time order, then click id, as the ingest worker
decides). A click converts with its link's rate after a delay (mean 30 minutes); one
that would convert after ``now`` has not converted yet. Conversions are bucketed by
when they were received.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import random
import uuid

from afftok.seed_network import Choice, Network, rolled_up_sub1
from afftok.seed_rollups import Rollups
from afftok.seed_traffic import BUCKET, Conversions, floor_bucket, split

CLICK_COLUMNS = ("click_id", "clicked_at", "org_id", "offer_id", "affiliate_id", "link_id", "outcome", "sub1",
                 "source_id", "ip", "user_agent", "referer", "country", "device_type", "ingested_at")
CONVERSION_COLUMNS = (
    "id", "org_id", "advertiser_id", "click_id", "clicked_at", "offer_id", "affiliate_id", "link_id", "external_id",
    "goal", "status", "reason", "fraud_flags", "revenue_minor", "payout_minor", "currency", "rule_applied", "ip",
    "user_agent", "country", "source", "postback_id", "received_at", "created_at", "updated_at", "click_country",
    "device_type", "sub1")
HISTORY_COLUMNS = ("org_id", "conversion_id", "from_status", "to_status", "reason", "actor", "revenue_delta_minor",
                   "payout_delta_minor", "currency", "created_at")
USER_AGENTS = {
    "desktop": ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"),
    "mobile": ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
               "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36"),
    "tablet": ("Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",),
}
FRAUD_CODES = ("repeat_ip", "too_fast", "datacenter_ip", "country_mismatch")
REPEAT_VISIT_SHARE = 0.15
CONVERSION_DELAY_MEAN_S = 1800


class RawRows:
    """The window's rows, ready for COPY, and what they add up to."""

    def __init__(self):
        self.clicks: list[tuple] = []
        self.conversions: list[tuple] = []
        self.history: list[tuple] = []


class RawWindow:
    def __init__(self, rng: random.Random, network: Network, conversions: Conversions, org_id: uuid.UUID,
                 now: dt.datetime, rollups: Rollups):
        self.rng, self.network, self.conversions = rng, network, conversions
        self.org_id, self.now, self.rollups = org_id, now, rollups
        self.rows = RawRows()
        self.recent: dict[int, list[tuple]] = {}  # link -> its visitors (address, user agent, country, device)
        self.seen: set[tuple] = set()  # (offer, UTC day, visitor) that already clicked
        self.orders = 0

    def bucket(self, bucket: dt.datetime, count: int, links: Choice) -> None:
        span_ms = int(min(BUCKET, self.now - bucket).total_seconds() * 1000)
        drawn = []
        for link, n in split(self.rng, count, links).items():
            for _ in range(n):
                at = bucket + dt.timedelta(milliseconds=self.rng.randrange(max(1, span_ms)))
                drawn.append(("%012x" % int(at.timestamp() * 1000) + os.urandom(16).hex(), at, link))
        drawn.sort(key=lambda c: c[0])  # time order, then click id: who was first
        for click_id, at, link in drawn:
            self._click(click_id, at, link)

    def _visitor(self, link: int) -> tuple:
        rng, earlier = self.rng, self.recent.setdefault(link, [])
        if earlier and rng.random() < REPEAT_VISIT_SHARE:
            return rng.choice(earlier)
        offer = self.network.offers[self.network.links[link].offer]
        device = offer.devices.draw(rng)
        address = ipaddress.IPv4Address(rng.choice((23, 31, 45, 62, 77, 89, 93, 104, 151, 176, 185, 212)) << 24
                                        | rng.getrandbits(24))
        visitor = (address, rng.choice(USER_AGENTS[device]), offer.countries.draw(rng), device)
        earlier.append(visitor)
        if len(earlier) > 50:
            earlier.pop(0)
        return visitor

    def _click(self, click_id: str, at: dt.datetime, link: int) -> None:
        net, rng = self.network, self.rng
        link_ = net.links[link]
        offer, affiliate = net.offers[link_.offer], net.affiliates[link_.affiliate]
        address, user_agent, country, device = self._visitor(link)
        sub1 = affiliate.sub1.draw(rng)
        seen_key = (link_.offer, at.date(), address, user_agent)
        unique = seen_key not in self.seen
        if unique:
            self.seen.add(seen_key)
        sub1_key = rolled_up_sub1(offer, sub1)
        self.rollups.add_clicks(floor_bucket(at), link, country, device, sub1_key, 1, int(unique))
        self.rows.clicks.append((
            click_id, at, self.org_id, offer.id, affiliate.id, link_.id, "redirect", sub1, None, address, user_agent,
            None, country, device, at + dt.timedelta(milliseconds=rng.randrange(50, 400)),
        ))
        if rng.random() < self.conversions.rate(link):
            received = at + dt.timedelta(seconds=5 + rng.expovariate(1 / CONVERSION_DELAY_MEAN_S))
            if received < self.now:
                self._conversion(click_id, at, link, received, (address, user_agent, country, device, sub1, sub1_key))

    def _conversion(self, click_id: str, clicked_at: dt.datetime, link: int, received: dt.datetime, click: tuple):
        net, rng = self.network, self.rng
        link_ = net.links[link]
        offer, affiliate = net.offers[link_.offer], net.affiliates[link_.affiliate]
        address, user_agent, country, device, sub1, sub1_key = click
        goal_key, status, flagged, revenue, payout = self.conversions.draw(link, received)
        self.rollups.add_conversion(floor_bucket(received), link, goal_key, country, device, sub1_key, status,
                                    flagged, revenue, payout)
        self.orders += 1
        conversion_id = uuid.uuid4()
        flags = [rng.choice(FRAUD_CODES)] if flagged else []
        created = received + dt.timedelta(milliseconds=rng.randrange(5, 200))
        rule = f"revenue=offer/default/flat payout={'override' if link_.payout_override else 'offer'}/default/flat"
        self.rows.conversions.append((
            conversion_id, self.org_id, net.advertisers[offer.advertiser][0], click_id, clicked_at, offer.id,
            affiliate.id, link_.id, f"ord-{self.orders:08d}", goal_key or None, status,
            flags[0] if flagged and status == "rejected" else None, flags, offer.revenue_minor, link_.payout_minor,
            offer.currency, rule, address, user_agent, country, "postback", f"pb-{conversion_id.hex[:20]}", received,
            created, created, country, device, sub1[:100] if sub1 else None,
        ))
        self._history(conversion_id, status, offer.revenue_minor, link_.payout_minor, offer.currency, created)

    def _history(self, conversion_id: uuid.UUID, status: str, revenue: int, payout: int, currency: str,
                 at: dt.datetime) -> None:
        first = "approved" if status == "reversed" else status
        earned = first == "approved"
        row = (self.org_id, conversion_id, None, first, None, "postback:token", revenue if earned else 0,
               payout if earned else 0, currency, at)
        self.rows.history.append(row)
        if status == "reversed":
            later = min(self.now, at + dt.timedelta(minutes=self.rng.randrange(5, 600)))
            self.rows.history.append((self.org_id, conversion_id, "approved", "reversed", "chargeback",
                                      "postback:token", -revenue, -payout, currency, later))
