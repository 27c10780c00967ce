"""The shape of a seeded network (pure: no I/O): advertisers, offers, affiliates, links and
the weights traffic is drawn with.

Everything is drawn from one ``random.Random``, so a seed gives the same network (names,
amounts, weights, sub1 values) every time; only the ids (uuid4, link tokens) differ, so
one database can hold the same network twice.

Popularity is Zipf-like (the exponents below): an offer's traffic by its rank, shared
among the affiliates promoting it by theirs (a few affiliates carry most of an offer),
with some noise per link. Countries follow the offer's geo profile, devices its device
profile; sub1 values belong to the affiliate (none for a third of them, a few channel
names for most, campaign or placement ids for some). The concentration is what keeps
the rollups realistic yet bounded: rows grow with traffic (more of the network shows up
in each bucket) but far slower than clicks (over 90 days, about 1.1M rows for 1M clicks,
6.2M for 10M and 22M for 100M: databases of 0.4, 2.4 and 8.2 GiB). Per offer, the
``sub1_limit`` most used values are admitted as stats dimension values
(``stats_sub1_values``); the rest roll up as '(other)'.
"""

from __future__ import annotations

import math
import random
import uuid
from bisect import bisect
from itertools import accumulate

import msgspec

from core.ids import new_link_token

SUB1_OTHER = "(other)"
COUNTRIES = {
    "US": 28, "GB": 7, "DE": 6.5, "FR": 5, "CA": 4, "BR": 5, "IN": 6, "MX": 3, "ES": 3, "IT": 3, "JP": 3, "AU": 2.5,
    "NL": 1.5, "PL": 1.5, "TR": 1.5, "ID": 2, "PH": 1.5, "VN": 1, "KR": 1, "SE": 0.8, "CH": 0.6, "AT": 0.6, "BE": 0.8,
    "AR": 1, "CO": 1, "ZA": 0.8, "NG": 0.8, "EG": 0.7, "TH": 1, "MY": 0.8,
}
UNKNOWN_COUNTRY_SHARE = 0.01  # clicks whose address no geo database knows
GEO_PROFILES = {  # name: (countries, currencies an offer of that profile pays in)
    "global": (tuple(COUNTRIES)[:12], ("USD", "USD", "USD", "EUR")),
    "north_america": (("US", "CA"), ("USD",)),
    "europe": (("GB", "DE", "FR", "ES", "IT", "NL", "PL", "SE", "CH", "AT", "BE"), ("EUR", "EUR", "GBP")),
    "uk": (("GB",), ("GBP",)),
    "japan": (("JP",), ("JPY",)),
    "latam": (("BR", "MX", "AR", "CO"), ("USD",)),
    "apac": (("JP", "KR", "AU", "ID", "PH", "VN", "TH", "MY", "IN"), ("USD", "JPY")),
}
GEO_PROFILE_WEIGHTS = {"global": 40, "north_america": 20, "europe": 15, "uk": 6, "japan": 6, "latam": 7, "apac": 6}
DEVICES = ("desktop", "mobile", "tablet")
DEVICE_PROFILES = ((0.7, 0.28, 0.02), (0.25, 0.73, 0.02), (0.06, 0.93, 0.01))
CHANNELS = ("facebook", "google", "tiktok", "instagram", "email", "native", "push", "youtube", "snapchat", "reddit",
            "bing", "twitter")
GOALS = (None, "lead", "sale")
# Zipf exponents: offers' traffic by rank, affiliates' share of an offer by their rank,
# sub1 values within an affiliate's; countries weigh their world share to this power.
OFFER_ZIPF = 1.3
AFFILIATE_ZIPF = 2.6
SUB1_ZIPF = 2.6
COUNTRY_CONCENTRATION = 3.0
MINOR_PER_USD_CENT = {"USD": 1.0, "EUR": 0.92, "GBP": 0.79, "JPY": 1.5}  # JPY has no minor unit: 1 yen = 1


class Choice:
    """Items with weights, heaviest first, for ``split`` and single draws."""

    __slots__ = ("items", "shares", "cum")

    def __init__(self, weighted: dict):
        ordered = sorted(weighted.items(), key=lambda kv: -kv[1])
        total = sum(w for _, w in ordered)
        self.items = [item for item, _ in ordered]
        self.shares = [w / total for _, w in ordered]
        self.cum = list(accumulate(self.shares))
        self.cum[-1] = 1.0

    def draw(self, rng: random.Random):
        return self.items[min(bisect(self.cum, rng.random()), len(self.items) - 1)]


class Offer(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    advertiser: int
    name: str
    currency: str
    revenue_minor: int
    payout_minor: int
    goals: Choice  # goal (None or a name) per conversion
    conversion_rate: float
    countries: Choice
    devices: Choice
    destination_url: str
    sub1_admitted: frozenset = frozenset()


class Affiliate(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    sub1: Choice  # value (None: no sub1) per click
    unique_share: float
    fraud_share: float
    conversion_factor: float


class Link(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    token: str
    offer: int
    affiliate: int
    weight: float
    payout_minor: int  # the affiliate's payout on this offer (an override for some)
    payout_override: bool


class Network(msgspec.Struct, kw_only=True):
    advertisers: list[tuple[uuid.UUID, str]]
    offers: list[Offer]
    affiliates: list[Affiliate]
    links: list[Link]


def network_size(clicks: int) -> tuple[int, int]:
    """Offers and affiliates for a traffic volume: 50 and 500 up to 1M clicks, then
    growing with the fourth root of the volume (89 and 889 at 10M, 158 and 1,581 at 100M)."""
    scale = max(1.0, clicks / 1_000_000) ** 0.25
    return min(200, round(50 * scale)), min(2000, round(500 * scale))


def build_network(rng: random.Random, clicks: int, sub1_limit: int) -> Network:
    n_offers, n_affiliates = network_size(clicks)
    advertisers = [(uuid.uuid4(), f"Advertiser {i + 1:02d}") for i in range(max(5, n_offers // 8))]
    offers = [_offer(rng, i, len(advertisers)) for i in range(n_offers)]
    affiliates = [_affiliate(rng, i) for i in range(n_affiliates)]
    links = _links(rng, offers, affiliates)
    _admit_sub1(offers, affiliates, links, sub1_limit)
    return Network(advertisers=advertisers, offers=offers, affiliates=affiliates, links=links)


def _offer(rng: random.Random, i: int, n_advertisers: int) -> Offer:
    profile = ("global", "europe", "uk", "japan")[i] if i < 4 else _weighted(rng, GEO_PROFILE_WEIGHTS)
    countries, currencies = GEO_PROFILES[profile]
    currency = ("USD", "EUR", "GBP", "JPY")[i] if i < 4 else rng.choice(currencies)
    revenue_cents = min(15_000, max(150, round(math.exp(rng.gauss(math.log(2500), 0.8)))))
    revenue = round(revenue_cents * MINOR_PER_USD_CENT[currency])
    goals = Choice({None: 1}) if rng.random() < 0.7 else Choice({"lead": 0.7, "sale": 0.3})
    weights = {c: (COUNTRIES[c] * math.exp(rng.gauss(0, 0.3))) ** COUNTRY_CONCENTRATION for c in countries}
    unknown = sum(weights.values()) * UNKNOWN_COUNTRY_SHARE
    return Offer(
        id=uuid.uuid4(), advertiser=rng.randrange(n_advertisers), name=f"Offer {i + 1:03d}", currency=currency,
        revenue_minor=revenue, payout_minor=round(revenue * rng.uniform(0.55, 0.8)), goals=goals,
        conversion_rate=min(0.05, max(0.005, math.exp(rng.gauss(math.log(0.018), 0.45)))),
        countries=Choice({**weights, None: unknown}), devices=Choice(dict(zip(DEVICES, rng.choice(DEVICE_PROFILES)))),
        destination_url=f"https://shop{i + 1:03d}.example/landing?cid={{click_id}}&s1={{sub1}}",
    )


def _affiliate(rng: random.Random, i: int) -> Affiliate:
    kind = rng.random()
    if kind < 0.35:
        values: list = [None]
    elif kind < 0.8:
        values = rng.sample(CHANNELS, rng.randint(1, 4))
    elif kind < 0.97:
        values = [f"camp-{rng.randrange(10_000):04d}" for _ in range(rng.randint(10, 80))]
    else:
        values = [f"pl{rng.randrange(10**6):06d}" for _ in range(rng.randint(200, 2000))]
    weights = {v: 1 / (rank + 1) ** SUB1_ZIPF for rank, v in enumerate(dict.fromkeys(values))}
    if values != [None]:
        weights[None] = 0.02 * sum(weights.values())  # a link pasted without its sub1
    return Affiliate(
        id=uuid.uuid4(), name=f"Affiliate {i + 1:04d}", sub1=Choice(weights), unique_share=rng.uniform(0.75, 0.95),
        fraud_share=0.15 if rng.random() < 0.05 else 0.015, conversion_factor=math.exp(rng.gauss(0, 0.3)),
    )


def _links(rng: random.Random, offers: list[Offer], affiliates: list[Affiliate]) -> list[Link]:
    """Each affiliate promotes a few offers, popular ones more often; an offer's traffic
    follows its own popularity and is shared among its affiliates by theirs."""
    popularity = [1 / (rank + 1) ** 1.3 for rank in range(len(offers))]
    pairs: set[tuple[int, int]] = set()
    for a in range(len(affiliates)):
        for _ in range(min(len(offers), 1 + int(rng.expovariate(1 / 2.5)))):
            pairs.add((rng.choices(range(len(offers)), weights=popularity)[0], a))
    for o in range(len(offers)):  # every offer has someone promoting it
        pairs.add((o, rng.randrange(min(50, len(affiliates)))))
    reach = [0.0] * len(offers)
    for o, a in pairs:
        reach[o] += 1 / (a + 1) ** AFFILIATE_ZIPF
    links = []
    for o, a in sorted(pairs, key=lambda p: (p[1], p[0])):
        offer, override = offers[o], rng.random() < 0.1
        links.append(Link(
            id=uuid.uuid4(), token=new_link_token(), offer=o, affiliate=a,
            weight=1 / (o + 1) ** OFFER_ZIPF / (a + 1) ** AFFILIATE_ZIPF / reach[o] * math.exp(rng.gauss(0, 0.5)),
            payout_minor=round(offer.payout_minor * 1.15) if override else offer.payout_minor, payout_override=override,
        ))
    return links


def _admit_sub1(offers: list[Offer], affiliates: list[Affiliate], links: list[Link], limit: int) -> None:
    used: list[dict[str, float]] = [{} for _ in offers]
    for link in links:
        values = affiliates[link.affiliate].sub1
        for value, share in zip(values.items, values.shares):
            if value is not None:
                used[link.offer][value] = used[link.offer].get(value, 0.0) + link.weight * share
    for offer, weights in zip(offers, used):
        ranked = sorted(weights, key=lambda v: (-weights[v], v))
        offer.sub1_admitted = frozenset(v[:100] for v in ranked[:limit])


def rolled_up_sub1(offer: Offer, value: str | None) -> str | None:
    """The stats dimension value of a click's sub1 on ``offer``."""
    if value is None:
        return None
    value = value[:100]
    return value if value in offer.sub1_admitted else SUB1_OTHER


def _weighted(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]
