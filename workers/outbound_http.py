"""The delivery worker's HTTP/1.1 client: one request to the addresses the SSRF guard checked.

Why not httpx or aiohttp: ``core.outbound_targets`` has already resolved the tenant's host
and checked every address, so the request must go to those addresses and nowhere else. A
general client would look the name up again (a rebinding DNS server could then answer with
an internal address), may follow a redirect to wherever the receiver points, and spreads
its timeouts over layers. This one is small enough to read in one sitting.

Contract: ``send`` makes exactly one request over one fresh connection (``Connection:
close``), reads the status, the headers and at most ``excerpt_bytes`` of the decoded body,
then closes the socket without reading the rest. Any final status is a ``Reply``, 3xx
included (its ``Location`` is kept for the record, never followed). No answer is a
``SendFailed`` whose ``kind`` is connect, timeout, tls or protocol. Bad input (method,
request target, a header that could inject another) is a ``ValueError`` raised before any
connection is made. Nothing is logged, bodies least of all.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import socket
import ssl
from collections.abc import Mapping

import msgspec

from core.outbound_targets import Target

_METHODS = frozenset({"GET", "POST"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_UNSAFE_VALUE = re.compile(r"[\r\n\x00]")
_SET_HERE = frozenset({"host", "content-length", "connection", "transfer-encoding"})
_DEFAULTS = (("User-Agent", "AffTok/1 (+webhooks)"), ("Accept", "*/*"))
_STATUS_LINE = re.compile(r"HTTP/1\.\d (\d{3})(?: .*)?")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_HEAD_MAX_BYTES = 32 * 1024
_INTERIM_MAX = 8
_RETRY_AFTER_MAX_S = 86_400
_LOCATION_MAX_CHARS = 300
_CLOSE_WAIT_S = 1.0


class Reply(msgspec.Struct, frozen=True, kw_only=True):
    status: int
    excerpt: str  # the first excerpt_bytes of the decoded body, utf-8 with replacement
    retry_after_s: int | None  # Retry-After in seconds form, capped at a day; dates are ignored
    location: str | None  # for the record only, never followed; truncated


class SendFailed(Exception):
    """No HTTP answer: ``kind`` is "connect", "timeout", "tls" or "protocol"."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


async def send(target: Target, method: str, body: bytes | None, headers: Mapping[str, str], *,
               connect_timeout_s: float, read_timeout_s: float, excerpt_bytes: int = 512,
               ssl_context: ssl.SSLContext | None = None) -> Reply:
    """Send one request to ``target.addresses`` (in order, first to connect wins) and read
    the start of the answer. Writing the request and reading the reply share one deadline,
    ``read_timeout_s``; connecting (TLS handshake included) has ``connect_timeout_s`` per address."""
    request = _request_bytes(target, method, body, headers)
    reader, writer = await _connect(target, connect_timeout_s, ssl_context)
    try:
        async with asyncio.timeout(read_timeout_s):
            writer.write(request)
            await writer.drain()
            return await _read_reply(reader, excerpt_bytes)
    except OSError as exc:
        raise _failure(exc, "waiting for the response") from None
    finally:
        await _close(writer)


def _request_bytes(target: Target, method: str, body: bytes | None, headers: Mapping[str, str]) -> bytes:
    if method not in _METHODS:
        raise ValueError(f"method must be GET or POST, not {method!r}")
    if target.scheme not in ("http", "https"):
        raise ValueError(f"scheme must be http or https, not {target.scheme!r}")
    if not target.request_target or not all("!" <= c <= "~" for c in target.request_target):
        raise ValueError("request target must be printable ASCII without spaces")
    lines = [f"{method} {target.request_target} HTTP/1.1", _field("Host", host_header(target))]
    for name, value in headers.items():
        if name.lower() in _SET_HERE:
            raise ValueError(f"header {name!r} is set by the client")
        lines.append(_field(name, value))
    given = {name.lower() for name in headers}
    lines += [_field(name, value) for name, value in _DEFAULTS if name.lower() not in given]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def host_header(target: Target) -> str:
    """The Host field: the name (an IPv6 literal in brackets), and the port unless the scheme's default."""
    host = f"[{target.host}]" if ":" in target.host else target.host
    return host if target.port == _DEFAULT_PORTS[target.scheme] else f"{host}:{target.port}"


def _field(name: str, value: str) -> str:
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"invalid header name {name!r}")
    if _UNSAFE_VALUE.search(value):
        raise ValueError(f"header {name!r} has a CR, LF or NUL in its value")
    return f"{name}: {value}"


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context()


async def _connect(target: Target, timeout_s: float,
                   context: ssl.SSLContext | None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    tls = {}
    if target.scheme == "https":  # the certificate is checked against the name, not the address
        tls = {"ssl": context or _default_ssl_context(), "server_hostname": target.host,
               "ssl_handshake_timeout": timeout_s}
    failure = SendFailed("connect", "no checked address to connect to")
    for address in target.addresses:
        opening = asyncio.open_connection(address, target.port, limit=_HEAD_MAX_BYTES,
                                          flags=socket.AI_NUMERICHOST, **tls)  # never a DNS lookup
        try:
            return await asyncio.wait_for(opening, timeout_s)
        except OSError as exc:
            failure = _failure(exc, f"connecting to {address} port {target.port}")
    raise failure


def _failure(exc: OSError, doing: str) -> SendFailed:
    if isinstance(exc, TimeoutError):
        return SendFailed("timeout", f"timed out {doing}")
    if isinstance(exc, ssl.SSLError):  # certificate verification failures included
        return SendFailed("tls", f"TLS failed {doing}: {exc}")
    return SendFailed("connect", f"connection failed {doing}: {exc}")


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), _CLOSE_WAIT_S)
    finally:
        writer.transport.abort()  # a no-op once closed; cuts a TLS close the peer never answers


async def _read_reply(reader: asyncio.StreamReader, excerpt_bytes: int) -> Reply:
    for _ in range(_INTERIM_MAX + 1):
        status, fields = await _read_head(reader)
        if status >= 200:
            break
    else:
        raise SendFailed("protocol", "too many interim (1xx) responses")
    body = b"" if status in (204, 304) else await _read_body(reader, fields, excerpt_bytes)
    location = fields.get("location") or None
    return Reply(status=status, excerpt=body[:excerpt_bytes].decode("utf-8", errors="replace"),
                 retry_after_s=_decimal(fields.get("retry-after", ""), _RETRY_AFTER_MAX_S),
                 location=location[:_LOCATION_MAX_CHARS] if location else None)


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        where = "inside the response head" if exc.partial else "before a response"
        raise SendFailed("protocol", f"connection closed {where}") from None
    except asyncio.LimitOverrunError:
        raise SendFailed("protocol", f"response head over {_HEAD_MAX_BYTES} bytes") from None
    status_line, *lines = head[:-4].decode("utf-8", errors="replace").split("\r\n")
    matched = _STATUS_LINE.fullmatch(status_line)
    if matched is None:
        raise SendFailed("protocol", "the answer does not start with an HTTP/1.x status line")
    fields: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if colon:
            fields.setdefault(name.strip().lower(), value.strip())
    return int(matched[1]), fields


async def _read_body(reader: asyncio.StreamReader, fields: dict[str, str], limit: int) -> bytes:
    if "chunked" in fields.get("transfer-encoding", "").lower():
        return await _read_chunked(reader, limit)
    length = _decimal(fields.get("content-length", ""), limit)
    if length is not None:
        return await _read_exactly(reader, length)
    data = b""
    while len(data) < limit:  # no length given: the body ends when the peer closes
        more = await reader.read(limit - len(data))
        if not more:
            break
        data += more
    return data


async def _read_chunked(reader: asyncio.StreamReader, limit: int) -> bytes:
    data = b""
    while len(data) < limit:
        try:
            line = await reader.readline()
        except ValueError:  # a size line longer than the stream limit
            raise SendFailed("protocol", "chunk size line too long") from None
        if not line:
            break  # the peer closed early: keep what came
        size_text = line.split(b";", 1)[0].strip()
        if not _CHUNK_SIZE.fullmatch(size_text):
            raise SendFailed("protocol", "bad chunk size in a chunked body")
        size = int(size_text, 16)
        if size == 0:
            break
        take = min(size, limit - len(data))
        data += await _read_exactly(reader, take)
        if take == size:
            await _read_exactly(reader, 2)  # the CRLF that ends the chunk
    return data


async def _read_exactly(reader: asyncio.StreamReader, size: int) -> bytes:
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError as exc:
        return exc.partial  # the peer closed early: keep what came


def _decimal(text: str, cap: int) -> int | None:
    """A header's non-negative decimal value, at most ``cap``; None when it is not one."""
    if not (text.isascii() and text.isdigit()):
        return None
    return min(int(text) if len(text) <= 18 else cap, cap)
