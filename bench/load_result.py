"""What one load run measured, whichever tool produced it."""

from __future__ import annotations

import msgspec


class LoadResult(msgspec.Struct, kw_only=True):
    tool: str
    url: str
    duration_s: float
    connections: int
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    status_counts: dict[str, int] = {}
    errors: int = 0
    target_rps: float | None = None  # set for fixed-rate runs
