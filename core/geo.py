"""Where a visitor is: client address and country, from values the edge hands over.

The country comes from a trusted header set by the proxy in front (e.g. Cloudflare's
``CF-IPCountry``) when one is configured and sane, else from the offline database of
the ``geoip2fast`` package, loaded once per process; lookups are cached per address.
Countries are ISO 3166-1 alpha-2 in upper case, or ``None`` when unknown.
"""

from __future__ import annotations

import ipaddress
import logging
from functools import lru_cache

log = logging.getLogger(__name__)

IP_CACHE_SIZE = 65_536
# Codes proxies use for "unknown", "Tor", "anonymous proxy", "satellite", "EU" and the like.
_NOT_COUNTRIES = frozenset({"XX", "T1", "A1", "A2", "O1", "AP", "EU", "ZZ"})
_database = None


def normalize_country(raw: str | bytes | None) -> str | None:
    """A two-letter country code in upper case, or ``None`` for anything else."""
    if not raw or len(raw) != 2:
        return None
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("ascii")
        except UnicodeDecodeError:
            return None
    code = raw.upper()
    if not ("A" <= code[0] <= "Z" and "A" <= code[1] <= "Z") or code in _NOT_COUNTRIES:
        return None
    return code


@lru_cache(maxsize=IP_CACHE_SIZE)
def normalize_ip(raw: str | None) -> str | None:
    """The canonical text of an IPv4/IPv6 address, or ``None`` if ``raw`` is not one."""
    if not raw:
        return None
    try:
        return str(ipaddress.ip_address(raw.strip()))
    except ValueError:
        return None


def client_ip(peer: str | None, forwarded_for: bytes | None, trust_forwarded_for: bool) -> str | None:
    """The visitor's address: the first X-Forwarded-For entry when trusted, else the peer."""
    if trust_forwarded_for and forwarded_for:
        first = forwarded_for.split(b",", 1)[0]
        try:
            return normalize_ip(first.decode("ascii").strip())
        except UnicodeDecodeError:
            return None
    return normalize_ip(peer)


def load_country_database() -> None:
    """Load the offline database now (start-up) rather than on the first click."""
    global _database
    if _database is None:
        from geoip2fast import GeoIP2Fast

        _database = GeoIP2Fast()


@lru_cache(maxsize=IP_CACHE_SIZE)
def country_of_ip(ip: str | None) -> str | None:
    if ip is None:
        return None
    try:
        load_country_database()
        return normalize_country(_database.lookup(ip).country_code)
    except Exception:
        log.exception("country lookup failed for %s", ip)
        return None


def visitor_country(header_value: bytes | None, ip: str | None) -> str | None:
    """The trusted header's country if it holds one, else the database's guess for ``ip``."""
    if header_value is not None:
        country = normalize_country(header_value)
        if country is not None:
            return country
    return country_of_ip(ip)
