"""Seeded traffic over time (pure): how many clicks each 15-minute bucket gets, and the
clicks and conversions of a bucket summed per rollup row.

- Volume: the clicks asked are spread over the span's buckets in proportion to a daily
  curve (most in the evening UTC, least in the morning), weekends a little lower, a
  slow upward trend and some noise per day; rounded so the buckets sum to exactly the
  number asked. The first and last buckets count only their part inside the span.
- Links: each day every link's weight is its network weight times its offer's mood that
  day; some offers start late in the span and some stop before its end.
- A bucket's clicks go to links, then countries, devices and sub1 values by ``split``:
  the heavy items get their expected share, the rest is drawn, so the cost follows the
  number of rows made, not the number of clicks.
- Unique clicks and conversions are binomial draws per row; a conversion's goal,
  status (recent ones are more often still pending), fraud flag and earned money are
  drawn per conversion, in the bucket of its clicks.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections import Counter

from afftok.seed_network import Choice, Network, rolled_up_sub1
from afftok.seed_rollups import Rollups

BUCKET = dt.timedelta(minutes=15)
EVENING_PEAK_HOUR_UTC = 20
DAILY_SWING = 0.45  # the curve goes from 1 - swing (morning) to 1 + swing (evening)
RECENT = dt.timedelta(days=2)  # conversions younger than this are often still pending
STATUSES_RECENT = Choice({"pending": 0.45, "approved": 0.47, "rejected": 0.06, "reversed": 0.02})
STATUSES_SETTLED = Choice({"pending": 0.02, "approved": 0.84, "rejected": 0.09, "reversed": 0.05})


def floor_bucket(at: dt.datetime) -> dt.datetime:
    return at - dt.timedelta(minutes=at.minute % 15, seconds=at.second, microseconds=at.microsecond)


def buckets(start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    first, out = floor_bucket(start), []
    while first < end:
        out.append(first)
        first += BUCKET
    return out


def bucket_counts(rng: random.Random, clicks: int, start: dt.datetime, end: dt.datetime) -> dict[dt.datetime, int]:
    """Clicks per bucket of [start, end), summing to exactly ``clicks``."""
    all_buckets = buckets(start, end)
    day_noise = [math.exp(rng.gauss(0, 0.08)) for _ in range((end - start).days + 2)]
    weights = []
    for b in all_buckets:
        inside = (min(b + BUCKET, end) - max(b, start)) / BUCKET
        mid = b + BUCKET / 2
        hour = mid.hour + mid.minute / 60
        daily = 1 + DAILY_SWING * math.cos(2 * math.pi * (hour - EVENING_PEAK_HOUR_UTC) / 24)
        weekend = 0.88 if mid.weekday() >= 5 else 1.0
        trend = 0.85 + 0.3 * ((mid - start) / (end - start))
        weights.append(inside * daily * weekend * trend * day_noise[(b - all_buckets[0]).days])
    return dict(zip(all_buckets, _apportion(clicks, weights)))


def _apportion(total: int, weights: list[float]) -> list[int]:
    """Integers in proportion to ``weights`` that sum to ``total`` (largest remainders)."""
    whole = sum(weights)
    exact = [total * w / whole for w in weights]
    counts = [int(e) for e in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def link_days(rng: random.Random, network: Network, days: int) -> list[Choice]:
    """The links' weights on each day of the span (day 0 is the first)."""
    live = []
    for _ in network.offers:
        start = rng.randrange(days * 2 // 3) if rng.random() < 0.15 else 0
        stop = rng.randrange(days // 3, days) if rng.random() < 0.08 and days >= 3 else days
        live.append((start, max(stop, start + 1)))
    tables = []
    for day in range(days):
        mood = [math.exp(rng.gauss(0, 0.25)) for _ in network.offers]
        weights = {i: link.weight * mood[link.offer] for i, link in enumerate(network.links)
                   if live[link.offer][0] <= day < live[link.offer][1]}
        tables.append(Choice(weights or {i: link.weight for i, link in enumerate(network.links)}))
    return tables


def split(rng: random.Random, count: int, choice: Choice) -> dict:
    """``count`` draws from ``choice``, counted per item: the heavy items get the whole
    part of their expected count at once, the remainder is drawn one by one."""
    if count < 8:
        return Counter(rng.choices(choice.items, cum_weights=choice.cum, k=count))
    out, placed = {}, 0
    for item, share in zip(choice.items, choice.shares):
        expected = int(count * share)
        if expected == 0:
            break
        out[item] = expected
        placed += expected
    for item in rng.choices(choice.items, cum_weights=choice.cum, k=count - placed):
        out[item] = out.get(item, 0) + 1
    return out


def binomial(rng: random.Random, n: int, p: float) -> int:
    """Successes in ``n`` trials of probability ``p`` (geometric skips for a small mean,
    a normal approximation for a large one)."""
    if n <= 0 or p <= 0:
        return 0
    if p >= 1:
        return n
    if p > 0.5:
        return n - binomial(rng, n, 1 - p)
    mean = n * p
    if mean > 40:
        return min(n, max(0, round(rng.gauss(mean, math.sqrt(mean * (1 - p))))))
    log_q, successes, position = math.log(1 - p), 0, 0
    while True:
        position += int(math.log(1 - rng.random()) / log_q) + 1
        if position > n:
            return successes
        successes += 1


class Conversions:
    """Draws what happens to a row's clicks after the click."""

    def __init__(self, rng: random.Random, network: Network, now: dt.datetime):
        self.rng, self.network, self.now = rng, network, now

    def rate(self, link: int) -> float:
        link_ = self.network.links[link]
        return min(0.2, self.network.offers[link_.offer].conversion_rate
                   * self.network.affiliates[link_.affiliate].conversion_factor)

    def draw(self, link: int, received_at: dt.datetime) -> tuple[str, str, bool, int, int]:
        """(goal_key, status, fraud flagged, revenue earned, payout earned) of one conversion."""
        rng, link_ = self.rng, self.network.links[link]
        offer = self.network.offers[link_.offer]
        flagged = rng.random() < self.network.affiliates[link_.affiliate].fraud_share
        statuses = STATUSES_RECENT if self.now - received_at < RECENT else STATUSES_SETTLED
        status = "rejected" if flagged and rng.random() < 0.5 else statuses.draw(rng)
        approved = status == "approved"
        goal = offer.goals.draw(rng)
        return (goal or "", status, flagged, offer.revenue_minor if approved else 0,
                link_.payout_minor if approved else 0)


def bulk_bucket(rng: random.Random, network: Network, links: Choice, conversions: Conversions,
                bucket: dt.datetime, count: int, rollups: Rollups) -> None:
    """A bucket's clicks summed into rollup rows; its conversions land in the same bucket."""
    offers, affiliates = network.offers, network.affiliates
    for link, in_link in split(rng, count, links).items():
        link_ = network.links[link]
        offer, affiliate = offers[link_.offer], affiliates[link_.affiliate]
        rate = conversions.rate(link)
        for country, in_country in split(rng, in_link, offer.countries).items():
            for device, in_device in split(rng, in_country, offer.devices).items():
                by_sub1: dict = {}
                for value, n in split(rng, in_device, affiliate.sub1).items():
                    key = rolled_up_sub1(offer, value)
                    by_sub1[key] = by_sub1.get(key, 0) + n
                for sub1, n in by_sub1.items():
                    unique = binomial(rng, n, affiliate.unique_share)
                    rollups.add_clicks(bucket, link, country, device, sub1, n, unique)
                    for _ in range(binomial(rng, n, rate)):
                        goal_key, status, flagged, revenue, payout = conversions.draw(link, bucket)
                        rollups.add_conversion(bucket, link, goal_key, country, device, sub1, status, flagged,
                                               revenue, payout)
