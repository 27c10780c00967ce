"""A fast local HTTP receiver for the delivery bench, in a process of its own.

It answers every request ``200 ok`` and closes the connection (the delivery worker sends
``Connection: close``), and remembers, per request, when its head arrived
(``time.time()``), its ``AffTok-Event-Id`` header and its request target (a postback's
query holds the expanded macros). It runs on uvloop in a forked child so the worker and
the bench share no event loop with it; ``collect`` stops it and returns what it saw.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from contextlib import contextmanager
from multiprocessing.connection import Connection
from socket import socket
from typing import Iterator

import msgspec

from bench.processes import die_with_parent, listening_socket

_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
_HEAD_MAX_BYTES = 64 * 1024
_EVENT_ID = b"afftok-event-id"
_START_TIMEOUT_S = 10
_COLLECT_TIMEOUT_S = 30


class Arrival(msgspec.Struct, array_like=True):
    at_s: float  # time.time() when the request's head had arrived
    event_id: str  # AffTok-Event-Id, "" when absent
    target: str  # the request target: path and query


class Received(msgspec.Struct, kw_only=True):
    arrivals: list[Arrival]
    errors: int  # connections that ended without a whole request


def parse_head(head: bytes) -> tuple[str, str, int]:
    """A request head (through its blank line) → (request target, event id, content length)."""
    request_line, *lines = head.rstrip(b"\r\n").split(b"\r\n")
    parts = request_line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise ValueError(f"not an HTTP/1.x request line: {request_line[:80]!r}")
    event_id, length = "", 0
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon:
            raise ValueError(f"not a header line: {line[:80]!r}")
        name = name.strip().lower()
        if name == _EVENT_ID:
            event_id = value.strip().decode("latin-1")
        elif name == b"content-length":
            length = int(value)
    return parts[1].decode("latin-1"), event_id, length


async def _serve(sock: socket, control: Connection) -> Received:
    received = Received(arrivals=[], errors=0)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            at_s = time.time()
            target, event_id, length = parse_head(head)
            if length:
                await reader.readexactly(length)
            received.arrivals.append(Arrival(at_s, event_id, target))
            writer.write(_RESPONSE)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            received.errors += 1
        finally:
            writer.close()

    stop = asyncio.Event()
    asyncio.get_running_loop().add_reader(control.fileno(), stop.set)
    server = await asyncio.start_server(handle, sock=sock, limit=_HEAD_MAX_BYTES, backlog=4096)
    async with server:
        control.send_bytes(b"ready")
        await stop.wait()
    return received


def _child(sock: socket, control: Connection) -> None:
    die_with_parent()
    import uvloop

    received = uvloop.run(_serve(sock, control))
    os.set_blocking(control.fileno(), True)  # the loop's reader made it non-blocking
    control.recv_bytes()  # the stop message
    control.send_bytes(msgspec.msgpack.encode(received))


class Receiver:
    def __init__(self, port: int, process: multiprocessing.Process, control: Connection):
        self.port = port
        self.process = process
        self._control = control

    @property
    def pid(self) -> int:
        return self.process.pid

    def collect(self) -> Received:
        """Stop the receiver and return every request it saw."""
        self._control.send_bytes(b"stop")
        if not self._control.poll(_COLLECT_TIMEOUT_S):
            raise TimeoutError(f"the receiver sent nothing back within {_COLLECT_TIMEOUT_S}s")
        received = msgspec.msgpack.decode(self._control.recv_bytes(), type=Received)
        self.process.join(_COLLECT_TIMEOUT_S)
        return received


@contextmanager
def receiver() -> Iterator[Receiver]:
    """A receiver on a free 127.0.0.1 port; always terminated when the block ends."""
    sock = listening_socket()
    port = sock.getsockname()[1]
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.get_context("fork").Process(target=_child, args=(sock, theirs), daemon=True)
    process.start()
    sock.close()
    try:
        if not ours.poll(_START_TIMEOUT_S) or ours.recv_bytes() != b"ready":
            raise RuntimeError(f"the receiver did not start within {_START_TIMEOUT_S}s")
        yield Receiver(port, process, ours)
    finally:
        if process.is_alive():
            process.terminate()
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join()
