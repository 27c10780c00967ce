"""Closed-loop peak throughput with wrk: run it, read rps and latency percentiles."""

from __future__ import annotations

import re
import subprocess

from bench.load_result import LoadResult

_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_PERCENTILE_RE = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)
_REQUESTS_RE = re.compile(r"^\s+(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.M)
_RPS_RE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_NON_3XX_RE = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS_RE = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def parse_wrk(output: str, *, url: str, connections: int) -> LoadResult:
    percentiles = {p: float(v) * _UNIT_MS[u] for p, v, u in _PERCENTILE_RE.findall(output)}
    requests = _REQUESTS_RE.search(output)
    rps = _RPS_RE.search(output)
    if not (requests and rps and {"50", "99"} <= percentiles.keys()):
        raise ValueError(f"unexpected wrk output:\n{output}")
    non_3xx = _NON_3XX_RE.search(output)
    socket_errors = _SOCKET_ERRORS_RE.search(output)
    return LoadResult(
        tool="wrk", url=url, connections=connections,
        duration_s=float(requests[2]) * _UNIT_MS[requests[3]] / 1e3,
        requests=int(requests[1]), rps=float(rps[1]),
        p50_ms=percentiles["50"], p99_ms=percentiles["99"],
        status_counts={"non_2xx_3xx": int(non_3xx[1])} if non_3xx else {},
        errors=sum(map(int, socket_errors.groups())) if socket_errors else 0,
    )


def run_wrk(
    url: str, duration_s: float, *, connections: int = 64, threads: int = 1, binary: str = "wrk", script: str | None = None,
) -> LoadResult:
    """``script``: a wrk Lua file (e.g. one that varies the request path)."""
    args = [binary, f"-t{threads}", f"-c{connections}", f"-d{duration_s:g}s", "--latency", url]
    if script:
        args[1:1] = ["-s", script]
    output = subprocess.run(args, capture_output=True, text=True, check=True, timeout=duration_s + 30).stdout
    return parse_wrk(output, url=url, connections=connections)
