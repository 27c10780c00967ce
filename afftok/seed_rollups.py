"""Rollup rows of seeded traffic (pure): facts summed into the six 15-minute and hourly stats tables exactly
as the live write path leaves them (migrations/0013_stats_rollups.sql,
core/store/stats_rollups.py): a click adds to a row with no currency and goal '', a
conversion to a row with its offer's currency and its goal, counted by its current
status, with earned (approved) money; every cube and grain holds the same totals.

A fact names its link (so its offer, advertiser and affiliate), its 15-minute bucket and
the full cube's other dimensions; ``Rollups`` adds it to all six tables at once and
hands the rows out as records ready for COPY.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Iterator

from afftok.seed_network import Network

TABLES = ("stats_offer_15m", "stats_offer_1h", "stats_affiliate_15m", "stats_affiliate_1h", "stats_full_15m",
          "stats_full_1h")
MEASURES = ("clicks", "unique_clicks", "conversions_pending", "conversions_approved", "conversions_rejected",
            "conversions_reversed", "fraud_flagged", "revenue_minor", "payout_minor")
DIMENSIONS = {
    "offer": ("offer_id", "advertiser_id", "currency"),
    "affiliate": ("offer_id", "advertiser_id", "affiliate_id", "goal_key", "currency"),
    "full": ("offer_id", "advertiser_id", "affiliate_id", "goal_key", "country", "device", "sub1", "currency"),
}
# The daily tables are summed from the hourly ones in SQL once the seed is written
# (``afftok.seed_store.rebuild_daily_rollups``).
DAILY_TABLES = ("stats_offer_1d", "stats_affiliate_1d", "stats_full_1d")
STATUS_INDEX = {"pending": 2, "approved": 3, "rejected": 4, "reversed": 5}
HOUR = dt.timedelta(hours=1)


def columns(table: str) -> tuple[str, ...]:
    cube = table.split("_")[1]
    return ("org_id", "bucket", *DIMENSIONS[cube], *MEASURES)


def hour_of(bucket: dt.datetime) -> dt.datetime:
    return bucket.replace(minute=0)


class Rollups:
    """Facts summed per table. Keys hold indexes into the network; a key's last member
    says whether it is a conversion row (the offer's currency) or a click row (none)."""

    def __init__(self, network: Network, org_id: uuid.UUID):
        self.network = network
        self.org_id = org_id
        self.tables: dict[str, dict[tuple, list[int]]] = {t: {} for t in TABLES}

    def add_clicks(self, bucket: dt.datetime, link: int, country, device, sub1, clicks: int, unique: int) -> None:
        hour, offer = hour_of(bucket), self.network.links[link].offer
        t = self.tables
        for table, key in (
            ("stats_full_15m", (bucket, link, "", country, device, sub1, False)),
            ("stats_full_1h", (hour, link, "", country, device, sub1, False)),
            ("stats_affiliate_15m", (bucket, link, "", False)),
            ("stats_affiliate_1h", (hour, link, "", False)),
            ("stats_offer_15m", (bucket, offer, False)),
            ("stats_offer_1h", (hour, offer, False)),
        ):
            m = t[table].get(key)
            if m is None:
                t[table][key] = [clicks, unique, 0, 0, 0, 0, 0, 0, 0]
            else:
                m[0] += clicks
                m[1] += unique

    def add_conversion(self, bucket: dt.datetime, link: int, goal_key: str, country, device, sub1, status: str,
                       flagged: bool, revenue_minor: int, payout_minor: int) -> None:
        hour, offer, s = hour_of(bucket), self.network.links[link].offer, STATUS_INDEX[status]
        t = self.tables
        for table, key in (
            ("stats_full_15m", (bucket, link, goal_key, country, device, sub1, True)),
            ("stats_full_1h", (hour, link, goal_key, country, device, sub1, True)),
            ("stats_affiliate_15m", (bucket, link, goal_key, True)),
            ("stats_affiliate_1h", (hour, link, goal_key, True)),
            ("stats_offer_15m", (bucket, offer, True)),
            ("stats_offer_1h", (hour, offer, True)),
        ):
            m = t[table].get(key)
            if m is None:
                m = t[table][key] = [0, 0, 0, 0, 0, 0, 0, 0, 0]
            m[s] += 1
            m[6] += flagged
            m[7] += revenue_minor
            m[8] += payout_minor

    def row_count(self) -> int:
        return sum(len(rows) for rows in self.tables.values())

    def take(self) -> dict[str, list[tuple]]:
        """Every row summed so far, as COPY records per table; starts afresh."""
        out = {table: list(self._records(table, rows)) for table, rows in self.tables.items()}
        self.tables = {t: {} for t in TABLES}
        return out

    def _records(self, table: str, rows: dict[tuple, list[int]]) -> Iterator[tuple]:
        net, org = self.network, self.org_id
        advertisers = [a[0] for a in net.advertisers]
        if table.startswith("stats_offer"):
            for (bucket, o, conversion), m in rows.items():
                offer = net.offers[o]
                yield (org, bucket, offer.id, advertisers[offer.advertiser], offer.currency if conversion else None, *m)
            return
        full = table.startswith("stats_full")
        for key, m in rows.items():
            link = net.links[key[1]]
            offer = net.offers[link.offer]
            head = (org, key[0], offer.id, advertisers[offer.advertiser], net.affiliates[link.affiliate].id, key[2])
            currency = offer.currency if key[-1] else None
            yield (*head, *key[3:6], currency, *m) if full else (*head, currency, *m)
