"""A small paced HTTP/1.1 load sender that remembers what each request got.

wrk and hey count responses, but the lag step must know exactly which postbacks were
answered 202 to check each of them became a row. This sends ``count`` GETs at
``rate_rps`` over ``connections`` keep-alive connections (asyncio streams, no HTTP
library in the loop) and returns every request's index, status and latency.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable

import msgspec


class Sent(msgspec.Struct, array_like=True):
    index: int
    status: int  # 0: no answer (connection failed)
    latency_ms: float


async def _read_response(reader: asyncio.StreamReader) -> int:
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def send_paced(host: str, port: int, path_of: Callable[[int], str], *, count: int, rate_rps: float, connections: int) -> list[Sent]:
    start = time.perf_counter() + 0.1
    next_index = iter(range(count))
    results: list[Sent] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for index in next_index:
                delay = start + index / rate_rps - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent_at = time.perf_counter()
                writer.write(f"GET {path_of(index)} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                try:
                    status = await _read_response(reader)
                except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
                    results.append(Sent(index, 0, (time.perf_counter() - sent_at) * 1000))
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                results.append(Sent(index, status, (time.perf_counter() - sent_at) * 1000))
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return sorted(results, key=lambda s: s.index)
