"""The outbound HTTP client against real local servers that answer with scripted bytes.

Targets carry a host name that does not resolve (``receiver.test``) and the address to
use (127.0.0.1): a request that arrives proves no DNS lookup was made.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import re
import socket
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.outbound_targets import Target
from workers.outbound_http import Reply, SendFailed, host_header, send

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Scripted:
    """A server on 127.0.0.1 that records each raw request and answers with fixed bytes,
    then closes the connection, or stalls until the test ends when ``stall`` is set."""

    def __init__(self, *answer: bytes, stall: bool = False):
        self.answer, self.stall = answer, stall
        self.requests: list[bytes] = []
        self.connections = 0
        self.port = 0
        self.stopped = asyncio.Event()
        self.handlers: set[asyncio.Task] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.handlers.add(asyncio.current_task())
        try:
            self.requests.append(await _read_request(reader))
            for part in self.answer:
                writer.write(part)
                await writer.drain()
            if self.stall:
                await self.stopped.wait()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client hung up first, as it may once it has its excerpt
        finally:
            writer.close()


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length: *(\d+)", head)
    return head + (await reader.readexactly(int(length[1])) if length else b"")


@contextlib.asynccontextmanager
async def serving(*answer: bytes, stall: bool = False, ssl_context: ssl.SSLContext | None = None):
    receiver = Scripted(*answer, stall=stall)
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0, ssl=ssl_context)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        receiver.stopped.set()
        server.close()
        await server.wait_closed()
        if receiver.handlers:
            await asyncio.wait(receiver.handlers, timeout=2)


@contextlib.contextmanager
def canary():
    """A listening socket nobody should connect to; yields a function counting connections."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        sock.setblocking(False)

        def connections() -> int:
            count = 0
            with contextlib.suppress(BlockingIOError):
                while True:
                    sock.accept()[0].close()
                    count += 1
            return count

        yield sock.getsockname()[1], connections


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def target(port: int, *, scheme: str = "http", host: str = "receiver.test",
           addresses: tuple[str, ...] = ("127.0.0.1",), request_target: str = "/hook?x=1") -> Target:
    return Target(url=f"{scheme}://{host}:{port}{request_target}", scheme=scheme, host=host, port=port,
                  request_target=request_target, addresses=addresses)


async def get(port: int, **options) -> Reply:
    options = {"connect_timeout_s": 1.0, "read_timeout_s": 1.0, **options}
    return await send(target(port), "GET", None, {}, **options)


def request_head(raw: bytes) -> list[str]:
    return raw.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")


async def test_post_sends_the_request_line_host_headers_and_exact_body():
    body = b'{"event":"conversion"}'
    async with serving(OK) as receiver:
        reply = await send(target(receiver.port), "POST", body, {"AffTok-Signature": "t=1,v1=ab",
                           "Content-Type": "application/json"}, connect_timeout_s=1, read_timeout_s=1)
    assert reply == Reply(status=200, excerpt="ok", retry_after_s=None, location=None)
    [raw] = receiver.requests
    lines = request_head(raw)
    assert lines[0] == "POST /hook?x=1 HTTP/1.1"
    assert set(lines[1:]) == {f"Host: receiver.test:{receiver.port}", "AffTok-Signature: t=1,v1=ab",
                              "Content-Type: application/json", f"Content-Length: {len(body)}",
                              "Connection: close", "User-Agent: AffTok/1 (+webhooks)", "Accept: */*"}
    assert raw.endswith(b"\r\n\r\n" + body)


async def test_get_has_no_content_length_and_caller_headers_replace_the_defaults():
    async with serving(OK) as receiver:
        await send(target(receiver.port), "GET", None, {"user-agent": "Tenant/2"},
                   connect_timeout_s=1, read_timeout_s=1)
    lines = request_head(receiver.requests[0])
    assert [line for line in lines if line.lower().startswith("user-agent:")] == ["user-agent: Tenant/2"]
    assert not [line for line in lines if line.lower().startswith("content-length:")]
    assert "Accept: */*" in lines


async def test_empty_post_body_still_sends_content_length():
    async with serving(OK) as receiver:
        await send(target(receiver.port), "POST", b"", {}, connect_timeout_s=1, read_timeout_s=1)
    assert "Content-Length: 0" in request_head(receiver.requests[0])


@pytest.mark.parametrize("status", [200, 204, 404, 410, 500, 503])
async def test_status_is_returned_as_is(status):
    answer = b"" if status == 204 else b"Content-Length: 4\r\n\r\nbody"
    async with serving(f"HTTP/1.1 {status} Whatever\r\n".encode() + (answer or b"\r\n")) as receiver:
        reply = await get(receiver.port)
    assert (reply.status, reply.excerpt) == (status, "" if status == 204 else "body")


async def test_redirect_is_returned_with_its_location_and_never_followed():
    with canary() as (canary_port, connections):
        location = f"http://127.0.0.1:{canary_port}/elsewhere"
        async with serving(f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode()) as r:
            reply = await get(r.port)
        assert (reply.status, reply.location) == (302, location)
        assert (r.connections, connections()) == (1, 0)


async def test_long_location_is_truncated():
    async with serving(b"HTTP/1.1 301 Moved\r\nLocation: /" + b"a" * 1000 + b"\r\n\r\n") as receiver:
        reply = await get(receiver.port)
    assert reply.location == "/" + "a" * 299


async def test_excerpt_stops_at_excerpt_bytes_without_reading_the_rest():
    # The server sends 10 KB of a 1 MB body and stalls: the client must not wait for more.
    answer = b"HTTP/1.1 500 Oops\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 10_000
    async with serving(answer, stall=True) as receiver:
        reply = await get(receiver.port, excerpt_bytes=512)
    assert reply.excerpt == "x" * 512


async def test_chunked_body_is_decoded():
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    async with serving(answer) as receiver:
        assert (await get(receiver.port)).excerpt == "hello world"
    async with serving(answer, stall=True) as receiver:
        assert (await get(receiver.port, excerpt_bytes=8)).excerpt == "hello wo"


async def test_body_without_length_is_read_until_close_or_excerpt_bytes():
    async with serving(b"HTTP/1.1 200 OK\r\n\r\n", b"read ", b"until close") as receiver:
        assert (await get(receiver.port)).excerpt == "read until close"
    async with serving(b"HTTP/1.1 200 OK\r\n\r\n" + b"y" * 10_000, stall=True) as receiver:
        assert (await get(receiver.port, excerpt_bytes=100)).excerpt == "y" * 100


async def test_excerpt_replaces_invalid_utf8():
    async with serving(b"HTTP/1.1 400 Bad\r\nContent-Length: 3\r\n\r\na\xffb") as receiver:
        assert (await get(receiver.port)).excerpt == "a\ufffdb"


@pytest.mark.parametrize("value, seconds", [
    ("120", 120), ("Wed, 21 Oct 2015 07:28:00 GMT", None), ("99999999", 86400), ("9" * 5000, 86400),
    ("-5", None), ("1.5", None), ("", None),
])
async def test_retry_after_seconds(value, seconds):
    answer = f"HTTP/1.1 503 Busy\r\nRetry-After: {value}\r\nContent-Length: 0\r\n\r\n".encode()
    async with serving(answer) as receiver:
        assert (await get(receiver.port)).retry_after_s == seconds


async def test_server_that_never_answers_is_a_timeout():
    async with serving(stall=True) as receiver, asyncio.timeout(2):
        with pytest.raises(SendFailed) as failed:
            await get(receiver.port, read_timeout_s=0.2)
    assert failed.value.kind == "timeout"


async def test_server_that_stalls_mid_body_is_a_timeout():
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part"
    async with serving(answer, stall=True) as receiver, asyncio.timeout(2):
        with pytest.raises(SendFailed) as failed:
            await get(receiver.port, read_timeout_s=0.2)
    assert failed.value.kind == "timeout"


async def test_closed_port_is_a_connect_failure():
    with pytest.raises(SendFailed) as failed:
        await get(closed_port())
    assert failed.value.kind == "connect"


async def test_next_address_is_tried_when_the_first_fails():
    # The server listens on 127.0.0.1 only, so ::1 refuses (or is unavailable): either way
    # the first address fails and the second must be used.
    async with serving(OK) as receiver:
        reply = await send(target(receiver.port, addresses=("::1", "127.0.0.1")), "GET", None, {},
                           connect_timeout_s=1, read_timeout_s=1)
    assert reply.status == 200 and receiver.connections == 1


async def test_name_in_addresses_is_never_resolved():
    async with serving(OK) as receiver:
        with pytest.raises(SendFailed) as failed:
            await send(target(receiver.port, addresses=("localhost",)), "GET", None, {},
                       connect_timeout_s=1, read_timeout_s=1)
    assert failed.value.kind == "connect" and receiver.connections == 0


@pytest.mark.parametrize("answer", [b"HELLO\r\n\r\n", b"HTTP/2 200\r\n\r\n", b"HTTP/1.1 200 OK\r\nX: " + b"a" * 40_000])
async def test_answer_that_is_not_http1_is_a_protocol_failure(answer):
    async with serving(answer) as receiver:
        with pytest.raises(SendFailed) as failed:
            await get(receiver.port)
    assert failed.value.kind == "protocol"


async def test_peer_closing_before_a_status_line_is_a_protocol_failure():
    async with serving() as receiver:
        with pytest.raises(SendFailed) as failed:
            await get(receiver.port)
    assert (failed.value.kind, failed.value.message) == ("protocol", "connection closed before a response")


async def test_interim_100_continue_is_skipped():
    async with serving(b"HTTP/1.1 100 Continue\r\n\r\n", OK) as receiver:
        reply = await get(receiver.port)
    assert (reply.status, reply.excerpt) == (200, "ok")


@pytest.mark.parametrize("method, headers, request_target", [
    ("GET", {"X-Note": "a\r\nX-Evil: 1"}, "/"),
    ("GET", {"X-Note": "a\nb"}, "/"),
    ("GET", {"X-Note": "a\x00b"}, "/"),
    ("GET", {"X Bad": "1"}, "/"),
    ("GET", {"X-Bad:": "1"}, "/"),
    ("GET", {"Content-Length": "5"}, "/"),
    ("GET", {"Host": "other.test"}, "/"),
    ("PUT", {}, "/"),
    ("get", {}, "/"),
    ("GET", {}, "/a b"),
    ("GET", {}, "/a\r\nX-Evil: 1"),
    ("GET", {}, ""),
])
async def test_unsafe_request_is_refused_before_connecting(method, headers, request_target):
    with canary() as (port, connections):
        with pytest.raises(ValueError):
            await send(target(port, request_target=request_target), method, b"", headers,
                       connect_timeout_s=1, read_timeout_s=1)
        assert connections() == 0


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for receiver.test and 127.0.0.1: (cert path, server context)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "receiver.test")])
    now = dt.datetime.now(dt.timezone.utc)
    sans = [x509.DNSName("receiver.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    usage = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=False,
                          encipher_only=False, decipher_only=False)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    directory = tmp_path_factory.mktemp("tls")
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    return directory / "cert.pem", server


@pytest.mark.parametrize("host, kind", [("receiver.test", None), ("127.0.0.1", None), ("other.test", "tls")])
async def test_https_verifies_the_certificate_against_the_host_not_the_address(certificate, host, kind):
    cert_path, server_context = certificate
    client_context = ssl.create_default_context(cafile=cert_path)
    async with serving(OK, ssl_context=server_context) as receiver:
        sending = send(target(receiver.port, scheme="https", host=host), "POST", b"{}", {},
                       connect_timeout_s=1, read_timeout_s=1, ssl_context=client_context)
        if kind is None:
            assert (await sending).status == 200
            assert f"Host: {host}:{receiver.port}" in request_head(receiver.requests[0])
        else:
            with pytest.raises(SendFailed) as failed:
                await sending
            assert failed.value.kind == kind and receiver.requests == []


async def test_https_with_the_system_trust_store_refuses_a_self_signed_certificate(certificate):
    async with serving(OK, ssl_context=certificate[1]) as receiver:
        with pytest.raises(SendFailed) as failed:
            await send(target(receiver.port, scheme="https"), "GET", None, {},
                       connect_timeout_s=1, read_timeout_s=1)
    assert failed.value.kind == "tls"


@pytest.mark.parametrize("scheme, host, port, header", [
    ("http", "example.com", 80, "example.com"),
    ("https", "example.com", 443, "example.com"),
    ("http", "example.com", 8080, "example.com:8080"),
    ("https", "example.com", 80, "example.com:80"),
    ("http", "93.184.216.34", 80, "93.184.216.34"),
    ("https", "2606:4700:4700::1111", 443, "[2606:4700:4700::1111]"),
    ("http", "::1", 8080, "[::1]:8080"),
])
def test_host_header(scheme, host, port, header):
    target = Target(url="", scheme=scheme, host=host, port=port, request_target="/", addresses=())
    assert host_header(target) == header
