"""Visitor addresses stored truncated, for organizations that opt in.

IPv4 keeps its /24 (the last octet becomes 0), IPv6 its /48: enough for country,
network and fraud patterns, not enough to single out a household. An IPv4 address
written as IPv6 (``::ffff:a.b.c.d``) is truncated as the IPv4 address it is, not as
IPv6 (whose /48 would keep nothing of it).
"""

from __future__ import annotations

import ipaddress

IPV4_PREFIX_BITS = 24
IPV6_PREFIX_BITS = 48

_V4_MASK = ((1 << IPV4_PREFIX_BITS) - 1) << (32 - IPV4_PREFIX_BITS)
_V6_MASK = ((1 << IPV6_PREFIX_BITS) - 1) << (128 - IPV6_PREFIX_BITS)


def truncate_ip(raw: str | None) -> str | None:
    """The network address of ``raw``'s /24 (IPv4) or /48 (IPv6); ``None`` if not an address."""
    if not raw:
        return None
    try:
        address = ipaddress.ip_address(raw.strip())
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.version == 4:
        return str(ipaddress.IPv4Address(int(address) & _V4_MASK))
    return str(ipaddress.IPv6Address(int(address) & _V6_MASK))
