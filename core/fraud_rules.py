"""Fraud verdicts on a conversion at attribution, each with a stable reason code.

Every rule is a pure function that returns a ``Verdict`` or ``None``; an unknown input
(no User-Agent, no click time, no count, no IP, an unknown country) is never a verdict.
``evaluate`` runs them all and sorts the verdicts by the offer's ``FraudPolicy``: each
rule either flags the conversion for review or rejects it. The edge still redirects and
records every click; these rules only decide what a conversion is worth.

``ip`` is the visitor's address (the click's, or the browser's for a pixel conversion),
never the address of the advertiser's server that sent a server-to-server postback.
"""

from __future__ import annotations

import bisect
import ipaddress
from datetime import datetime
from typing import Iterable, Literal

import msgspec

from core.devices import BOT, device_type
from core.errors import ValidationError
from core.geo import normalize_country

BOT_USER_AGENT = "bot_user_agent"
TOO_FAST = "too_fast"
CLICK_FLOOD = "click_flood"
REPEAT_IP = "repeat_ip"
DATACENTER_IP = "datacenter_ip"
COUNTRY_MISMATCH = "country_mismatch"

DEFAULT_MIN_SECONDS_TO_CONVERT = 10

# Lower-case substrings of automated clients that ua-parser does not call a spider.
# Specific names only: a bare "bot" would also match phones such as the Cubot.
BOT_USER_AGENT_MARKERS = (
    "headlesschrome", "phantomjs", "selenium", "webdriver", "puppeteer", "playwright",
    "python-requests", "python-urllib", "aiohttp", "httpx", "scrapy", "curl/", "wget/",
    "go-http-client", "java/", "apache-httpclient", "libwww-perl", "node-fetch", "axios/",
    "crawler", "spider", "googlebot", "bingbot", "yandexbot", "baiduspider",
    "ahrefsbot", "semrushbot", "mj12bot", "dotbot", "petalbot", "bytespider", "gptbot",
    "ccbot", "facebookexternalhit", "slurp",
)

Action = Literal["flag", "reject"]


class Verdict(msgspec.Struct, frozen=True):
    code: str
    detail: str


def bot_user_agent(user_agent: str | None) -> Verdict | None:
    if not user_agent:
        return None
    lowered = user_agent.lower()
    for marker in BOT_USER_AGENT_MARKERS:
        if marker in lowered:
            return Verdict(BOT_USER_AGENT, f"user agent contains {marker!r}")
    if device_type(user_agent) == BOT:
        return Verdict(BOT_USER_AGENT, "user agent is a known crawler")
    return None


def too_fast(clicked_at: datetime | None, converted_at: datetime | None, min_seconds: float) -> Verdict | None:
    """Converted less than ``min_seconds`` after the click (or before it: clock skew or
    a forged postback); exactly ``min_seconds`` passes. Both times are timezone-aware."""
    if clicked_at is None or converted_at is None:
        return None
    elapsed_s = (converted_at - clicked_at).total_seconds()
    if elapsed_s < min_seconds:
        return Verdict(TOO_FAST, f"converted {elapsed_s:.3f} s after the click, minimum {min_seconds} s")
    return None


def click_flood(clicks_from_ip_last_minute: int | None, max_per_minute: int) -> Verdict | None:
    """More clicks from the IP on the offer in the last minute (the attributed one
    included) than ``max_per_minute``; exactly the maximum passes."""
    if clicks_from_ip_last_minute is None or clicks_from_ip_last_minute <= max_per_minute:
        return None
    return Verdict(CLICK_FLOOD, f"{clicks_from_ip_last_minute} clicks from the IP in a minute, maximum {max_per_minute}")


def repeat_ip(earlier_conversions_from_ip: int | None, max_earlier: int) -> Verdict | None:
    """More earlier conversions from the IP on the offer (this one not counted) than
    ``max_earlier``; exactly the maximum passes, so 0 allows one conversion per IP."""
    if earlier_conversions_from_ip is None or earlier_conversions_from_ip <= max_earlier:
        return None
    return Verdict(REPEAT_IP, f"{earlier_conversions_from_ip} earlier conversions from the IP, maximum {max_earlier}")


def country_mismatch(click_country: str | None, conversion_country: str | None) -> Verdict | None:
    click, conversion = normalize_country(click_country), normalize_country(conversion_country)
    if click is None or conversion is None or click == conversion:
        return None
    return Verdict(COUNTRY_MISMATCH, f"clicked from {click}, converted from {conversion}")


class CidrList(msgspec.Struct, frozen=True):
    """Operator-provided address ranges (datacenters, proxies), merged and sorted once so
    that a lookup is a binary search. Build it with ``CidrList.parse``."""

    v4: tuple[tuple[int, int], ...] = ()  # (first, last) addresses as integers, disjoint, sorted
    v6: tuple[tuple[int, int], ...] = ()

    @classmethod
    def parse(cls, lines: str | Iterable[str]) -> CidrList:
        """One CIDR or address per line; blank lines and ``#`` comments are skipped.

        Raises ``ValidationError`` (``invalid_cidr``) naming the first bad line (from 1).
        Host bits set (``10.0.0.1/8``) count as bad: it is usually a typo.
        """
        if isinstance(lines, str):
            lines = lines.splitlines()
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for number, raw in enumerate(lines, start=1):
            text = raw.split("#", 1)[0].strip()
            if not text:
                continue
            try:
                networks.append(ipaddress.ip_network(text))
            except ValueError as error:
                raise ValidationError("invalid_cidr", f"line {number}: {text!r} is not a CIDR range ({error})") from None
        return cls(
            v4=_ranges(n for n in networks if n.version == 4),
            v6=_ranges(n for n in networks if n.version == 6),
        )

    def contains(self, ip: str | None) -> bool:
        """Whether ``ip`` lies in a range; ``False`` for no or an unparseable address.
        An IPv4-mapped IPv6 address (``::ffff:1.2.3.4``) is looked up as IPv4."""
        if not ip:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        ranges = self.v4 if address.version == 4 else self.v6
        value = int(address)
        index = bisect.bisect_right(ranges, (value, float("inf"))) - 1
        return index >= 0 and ranges[index][0] <= value <= ranges[index][1]


def _ranges(networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> tuple[tuple[int, int], ...]:
    return tuple(
        (int(n.network_address), int(n.broadcast_address)) for n in ipaddress.collapse_addresses(networks)
    )


def datacenter_ip(ip: str | None, ranges: CidrList) -> Verdict | None:
    if ranges.contains(ip):
        return Verdict(DATACENTER_IP, f"{ip} is in an operator-listed datacenter or proxy range")
    return None


class FraudPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An offer's fraud settings. A ``None`` threshold leaves its rule off."""

    bot_user_agent: Action = "flag"
    too_fast: Action = "flag"
    min_seconds_to_convert: int = DEFAULT_MIN_SECONDS_TO_CONVERT
    click_flood: Action = "flag"
    click_flood_max_per_minute: int | None = None
    repeat_ip: Action = "flag"
    repeat_ip_max_earlier: int | None = None
    datacenter_ip: Action = "flag"
    country_mismatch: Action = "flag"

    def __post_init__(self) -> None:
        for code in (BOT_USER_AGENT, TOO_FAST, CLICK_FLOOD, REPEAT_IP, DATACENTER_IP, COUNTRY_MISMATCH):
            if getattr(self, code) not in ("flag", "reject"):
                raise ValidationError("invalid_fraud_policy", f"{code} must be 'flag' or 'reject'")
        for name in ("min_seconds_to_convert", "click_flood_max_per_minute", "repeat_ip_max_earlier"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 0):
                raise ValidationError("invalid_fraud_policy", f"{name} must be a non-negative integer")


class ConversionSignals(msgspec.Struct, frozen=True):
    """What the worker knows about a conversion when it attributes it."""

    converted_at: datetime
    clicked_at: datetime | None = None
    user_agent: str | None = None
    ip: str | None = None
    click_country: str | None = None
    conversion_country: str | None = None
    clicks_from_ip_last_minute: int | None = None
    earlier_conversions_from_ip: int | None = None


class FraudOutcome(msgspec.Struct, frozen=True):
    """``flagged`` and ``rejected`` hold the verdicts under each action, in rule order."""

    flagged: tuple[Verdict, ...] = ()
    rejected: tuple[Verdict, ...] = ()

    @property
    def action(self) -> Literal["accept", "flag", "reject"]:
        return "reject" if self.rejected else "flag" if self.flagged else "accept"

    @property
    def reason(self) -> str | None:
        """The code to store on the conversion: the first rejecting, else flagging, rule."""
        first = (self.rejected or self.flagged or (None,))[0]
        return first.code if first else None


def evaluate(signals: ConversionSignals, policy: FraudPolicy, datacenter_ranges: CidrList | None = None) -> FraudOutcome:
    verdicts = [
        bot_user_agent(signals.user_agent),
        too_fast(signals.clicked_at, signals.converted_at, policy.min_seconds_to_convert),
        None if policy.click_flood_max_per_minute is None
        else click_flood(signals.clicks_from_ip_last_minute, policy.click_flood_max_per_minute),
        None if policy.repeat_ip_max_earlier is None
        else repeat_ip(signals.earlier_conversions_from_ip, policy.repeat_ip_max_earlier),
        None if datacenter_ranges is None else datacenter_ip(signals.ip, datacenter_ranges),
        country_mismatch(signals.click_country, signals.conversion_country),
    ]
    flagged, rejected = [], []
    for verdict in verdicts:
        if verdict is not None:
            (rejected if getattr(policy, verdict.code) == "reject" else flagged).append(verdict)
    return FraudOutcome(flagged=tuple(flagged), rejected=tuple(rejected))
