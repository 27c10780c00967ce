"""Real local HTTP receivers for the delivery tests: they listen on 127.0.0.1, record every
request, answer as scripted, and can go down and come back on the same port.

``Receiver.answer`` decides each response (default 200); ``event_ids`` counts requests
per ``AffTok-Event-Id``, the key a deduping receiver keeps; a receiver used as a
*canary* just counts connections, which must stay zero.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
from typing import Callable

import msgspec


class Request(msgspec.Struct, kw_only=True):
    method: str
    target: str
    headers: dict[str, str]  # lower-case names
    body: bytes


class Answer(msgspec.Struct, kw_only=True):
    status: int = 200
    headers: dict[str, str] = {}
    body: bytes = b"ok"
    delay_s: float = 0.0  # before answering (a read timeout when longer than the sender's)


class Receiver:
    def __init__(self, answer: Callable[[Request], Answer] | None = None):
        self.answer = answer or (lambda _request: Answer())
        self.requests: list[Request] = []
        self.connections = 0
        self.port = _free_port()
        self._server: asyncio.base_events.Server | None = None

    @property
    def event_ids(self) -> collections.Counter:
        return collections.Counter(r.headers.get("afftok-event-id") for r in self.requests)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def up(self) -> "Receiver":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        return self

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            request = await _read_request(reader)
            if request is None:
                return
            self.requests.append(request)
            answer = self.answer(request)
            if answer.delay_s:
                await asyncio.sleep(answer.delay_s)
            head = f"HTTP/1.1 {answer.status} X\r\nContent-Length: {len(answer.body)}\r\nConnection: close\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in answer.headers.items())
            writer.write(head.encode() + b"\r\n" + answer.body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Request(method=method, target=target, headers=headers, body=body)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def receivers(*answers: Callable[[Request], Answer] | None):
    """Start one receiver per ``answers`` entry; stop them all at the end."""
    started = [await Receiver(a).up() for a in answers]
    try:
        yield started
    finally:
        for r in started:
            await r.down()
