"""Where the worker may send an outbound request: the SSRF guard for tenant-typed URLs.

Affiliate postback templates and webhook URLs are typed in by tenants, so each one is
checked when it is saved and again, with a fresh lookup, when a request is sent:

- http or https only, no userinfo, a port from the operator's allowed list;
- the host is a DNS name or a canonical IP literal; the numeric forms resolvers accept
  but people do not read (``2130706433``, ``0x7f000001``, ``0177.0.0.1``, ``127.1``) are
  refused outright;
- the name is resolved once and *every* address must be globally routable and outside
  the deny list (cloud metadata and other special-purpose addresses), unless it lies in
  the operator's allow-list, which never admits the metadata addresses;
- the sender connects to the addresses that were checked (``Target.addresses``), so a
  second lookup cannot rebind the name to an internal address.

Decisions: ``localhost`` and names under ``.localhost``, ``.local``, ``.internal``,
``.localdomain`` and ``.home.arpa`` are refused without a lookup, unless the operator has
allow-listed networks (``crm.corp.internal`` in 10.0.0.0/8 is what that is for); dotless
names (a compose service) are looked up, as the addresses decide. IPv4-mapped and NAT64
(64:ff9b::/96) addresses are judged as the IPv4 address they reach, 6to4 must embed an
acceptable one, Teredo is refused. Non-ASCII in the path or query is percent-encoded; the
fragment is dropped. Messages quote at most 200 characters of what the tenant typed.

``UnsafeTarget`` is the one error; its ``code`` is ``unsafe_url``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlsplit

import msgspec

from core.errors import ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]  # (host, port) -> IP strings

MAX_URL_CHARS = 2048
_ECHO_CHARS = 200  # messages quote at most this much of what the tenant typed
_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNSENDABLE = re.compile(r"[\x00-\x20\x7f\\]")
_PORT = re.compile(r"[0-9]{1,5}")
_DIGITS = re.compile(r"[0-9]+")
_QUAD_LABEL = re.compile(r"0|[1-9][0-9]{0,2}")
_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_INTERNAL_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa")
_TARGET_SAFE = "/%:@!$&'()*+,;=-._~?"


# Never reachable, whatever the allow-list says: cloud metadata services (AWS, ECS, Alibaba,
# Oracle, Azure wireserver), link-local, and "this network" (0.0.0.0 reaches this host).
_NEVER = tuple(map(ipaddress.ip_network, (
    "169.254.169.254/32", "169.254.170.2/32", "fd00:ec2::254/128", "100.100.100.200/32", "192.0.0.192/32",
    "168.63.129.16/32", "169.254.0.0/16", "fe80::/10", "0.0.0.0/8")))
# Not hosts on the internet, though ipaddress (3.11) may call them global; the allow-list may admit them.
_NOT_PUBLIC = tuple(map(ipaddress.ip_network, (
    "192.0.0.0/24", "100.64.0.0/10", "198.18.0.0/15", "224.0.0.0/4", "2001:db8::/32", "64:ff9b:1::/48", "fec0::/10")))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeTarget(ValidationError):
    code = "unsafe_url"


class OutboundPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """The operator's choices: which ports outbound URLs may use, and which internal
    networks (receivers on the operator's own network) are reachable besides the internet."""

    allowed_ports: frozenset[int] = frozenset({80, 443})
    allow_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_text(cls, ports: str = "80,443", allow: str = "") -> OutboundPolicy:
        """``"80,443,8443"`` and ``"10.0.0.0/8, 192.168.1.7, fd00::/8"`` (a bare address is
        one host); raises ValueError saying which entry is wrong."""
        return cls(allowed_ports=_ports_from_text(ports), allow_networks=_networks_from_text(allow))


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """A URL that passed the guard, with the addresses it was checked against."""

    url: str
    scheme: str  # "http" | "https"
    host: str  # lower-case DNS name (IDNA) or IP literal, without brackets
    port: int
    request_target: str  # path and query as sent on the request line, at least "/"
    addresses: tuple[str, ...]  # checked IPs, connect to these only, in this order


async def system_resolver(host: str, port: int) -> list[str]:
    """The machine's resolver: every address of ``host``, in its order, without repeats."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UnsafeTarget(message=f"{_clip(host)} does not resolve ({_clip(reason)})") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def resolve_target(url: str, policy: OutboundPolicy, resolver: Resolver = system_resolver) -> Target:
    """Check ``url`` and look its host up once; every address must pass ``check_address``."""
    scheme, host, port, request_target = parse_url(url, policy)
    literal = _ip(host) is not None  # a DNS name never parses as an address (see _host)
    found = [host] if literal else await resolver(host, port)
    addresses = tuple(dict.fromkeys(str(_ip(address) or address) for address in found))
    if not addresses:
        raise UnsafeTarget(message=f"{host} resolves to no addresses")
    of_host = "" if literal else f" of {host}"
    for address in addresses:
        if problem := _problem(_ip(address), policy):
            raise UnsafeTarget(message=f"address {_clip(address)}{of_host} {problem}")
    return Target(url=url, scheme=scheme, host=host, port=port, request_target=request_target,
                  addresses=addresses)


def check_address(address: str, policy: OutboundPolicy) -> None:
    """Raise UnsafeTarget unless the worker may connect to ``address`` (an IP string)."""
    if problem := _problem(_ip(address), policy):
        raise UnsafeTarget(message=f"address {_clip(str(address))} {problem}")


def parse_url(url: str, policy: OutboundPolicy) -> tuple[str, str, int, str]:
    """The static checks, no DNS: ``(scheme, host, port, request_target)`` or UnsafeTarget."""
    _check_text(url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise UnsafeTarget(message=f"URL is malformed: {_clip(str(exc))}") from None
    if parts.scheme not in _DEFAULT_PORTS:  # urlsplit lower-cases the scheme
        raise UnsafeTarget(message=f"scheme {_clip(parts.scheme)!r} is not allowed; use http or https"
                           if parts.scheme else "URL must start with http:// or https://")
    if "@" in parts.netloc:
        raise UnsafeTarget(message="URL must not carry a user name or password (an '@' before the host)")
    host_text, port_text = _split_authority(parts.netloc)
    port = _port(port_text, parts.scheme, policy)
    host = _host(host_text, policy)
    target = quote((parts.path or "/") + (f"?{parts.query}" if parts.query else ""), safe=_TARGET_SAFE)
    return parts.scheme, host, port, target


def _check_text(url: object) -> None:
    if not isinstance(url, str) or not url:
        raise UnsafeTarget(message="URL must be a non-empty string")
    if len(url) > MAX_URL_CHARS:
        raise UnsafeTarget(message=f"URL is {len(url)} characters long; the limit is {MAX_URL_CHARS}")
    if bad := _UNSENDABLE.search(url):
        what = "a backslash" if bad.group() == "\\" else "whitespace or a control character"
        raise UnsafeTarget(message=f"URL contains {what} at position {bad.start()}")


def _split_authority(netloc: str) -> tuple[str, str | None]:
    if netloc.startswith("["):
        inside, bracket, rest = netloc[1:].partition("]")
        if not bracket or rest[:1] not in ("", ":"):
            raise UnsafeTarget(message=f"host {_clip(netloc)!r} is malformed")
        return f"[{inside}]", rest[1:] if rest else None
    host, colon, port = netloc.partition(":")
    return host, port if colon else None


def _port(text: str | None, scheme: str, policy: OutboundPolicy) -> int:
    port = _DEFAULT_PORTS[scheme] if text is None else _port_number(text)
    if port is None:
        raise UnsafeTarget(message=f"port {_clip(text)!r} is not a number from 1 to 65535")
    if port not in policy.allowed_ports:
        allowed = ", ".join(str(p) for p in sorted(policy.allowed_ports))
        raise UnsafeTarget(message=f"port {port} is not allowed (allowed: {allowed})")
    return port


def _host(text: str, policy: OutboundPolicy) -> str:
    if not text:
        raise UnsafeTarget(message="URL has no host")
    if text.startswith("["):
        if not isinstance(ip := _ip(text[1:-1]), ipaddress.IPv6Address):
            raise UnsafeTarget(message=f"{_clip(text)} is not an IPv6 address (zone ids are not accepted)")
        return str(ip)
    host = _ascii_host(text.lower()).removesuffix(".")
    last = host.rpartition(".")[2]
    if _DIGITS.fullmatch(last) or last.startswith("0x"):  # a TLD is never numeric: an address form
        return _dotted_quad(host)
    if len(host) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in host.split(".")):
        raise UnsafeTarget(message=f"host {_clip(host)!r} is not a valid DNS name "
                                   "(labels of 1 to 63 letters, digits or inner '-', 253 characters in all)")
    if not policy.allow_networks and (host == "localhost" or host.endswith(_INTERNAL_SUFFIXES)):
        raise UnsafeTarget(message=f"host {_clip(host)} is an internal name; only public hosts are allowed")
    return host


def _ascii_host(host: str) -> str:
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise UnsafeTarget(message=f"host {_clip(host)!r} is not a valid internationalized name") from None


def _dotted_quad(host: str) -> str:
    labels = host.split(".")
    if len(labels) != 4 or not all(_QUAD_LABEL.fullmatch(label) and int(label) <= 255 for label in labels):
        raise UnsafeTarget(message=f"numeric host forms like {_clip(host)} are not accepted; "
                                   "write the address as a dotted quad")
    return host


def _problem(ip: IPAddress | None, policy: OutboundPolicy) -> str | None:
    """Why the worker may not connect to ``ip``, or None if it may."""
    if ip is None:
        return "is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.teredo:
            return "is a Teredo address, which tunnels to an address that cannot be checked"
        if (same := _same_ipv4(ip)) is not None:
            problem = _problem(same, policy)
            return problem and f"stands for {same}, which {problem}"
        if ip.sixtofour and (problem := _problem(ip.sixtofour, policy)):
            return f"embeds {ip.sixtofour}, which {problem}"
    if _within(ip, _NEVER):
        return "is a cloud metadata, link-local or this-host address, which is never allowed"
    if ip.is_multicast or ip.is_unspecified or (ip.is_reserved and not ip.is_loopback):  # ::1 lies in ::/8
        return "is a multicast, broadcast, unspecified or reserved address, which is never allowed"
    if _within(ip, policy.allow_networks):
        return None
    if not ip.is_global or _within(ip, _NOT_PUBLIC):
        return "is not globally routable"
    return None


def _same_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped or NAT64 (64:ff9b::/96) address reaches."""
    return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else ip.ipv4_mapped


def _within(ip: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(ip in net for net in networks)  # False across IP versions


def _ip(text: object) -> IPAddress | None:
    if not isinstance(text, str) or "%" in text:  # zone ids: link-local only, refused
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _port_number(text: str) -> int | None:
    return int(text) if _PORT.fullmatch(text) and 1 <= int(text) <= 65535 else None


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _ports_from_text(text: str) -> frozenset[int]:
    if not (items := _items(text)):
        raise ValueError("no outbound ports given; list at least one, e.g. '80,443'")
    if bad := [item for item in items if _port_number(item) is None]:
        raise ValueError(f"outbound port {_clip(bad[0])!r} is not a number from 1 to 65535")
    return frozenset(map(int, items))


def _networks_from_text(text: str) -> tuple[IPNetwork, ...]:
    networks = []
    for item in _items(text):
        try:
            if "%" in item:
                raise ValueError("zone ids are not accepted")
            networks.append(ipaddress.ip_network(item))
        except ValueError as exc:
            raise ValueError(f"outbound allow-list entry {_clip(item)!r} is not an address or a network "
                             f"in CIDR form ({exc})") from None
    return tuple(networks)


def _clip(text: str) -> str:
    return text if len(text) <= _ECHO_CHARS else text[:_ECHO_CHARS] + "..."
