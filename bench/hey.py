"""Latency at a fixed request rate with hey: run it, read percentiles and status codes."""

from __future__ import annotations

import re
import subprocess

from bench.load_result import LoadResult

_PERCENTILE_RE = re.compile(r"^\s+(50|99)%\s+in\s+([\d.]+)\s+secs", re.M)
_TOTAL_RE = re.compile(r"^\s+Total:\s+([\d.]+)\s+secs", re.M)
_RPS_RE = re.compile(r"^\s+Requests/sec:\s+([\d.]+)", re.M)
_STATUS_RE = re.compile(r"^\s+\[(\d{3})\]\s+(\d+)\s+responses", re.M)
_ERROR_SECTION_RE = re.compile(r"^Error distribution:\n((?:\s+\[\d+\].*\n?)*)", re.M)
_ERROR_COUNT_RE = re.compile(r"^\s+\[(\d+)\]", re.M)


def parse_hey(output: str, *, url: str, connections: int, target_rps: float) -> LoadResult:
    percentiles = {p: float(v) * 1e3 for p, v in _PERCENTILE_RE.findall(output)}
    total, rps = _TOTAL_RE.search(output), _RPS_RE.search(output)
    if not (total and rps and {"50", "99"} <= percentiles.keys()):
        raise ValueError(f"unexpected hey output:\n{output}")
    status_counts = {code: int(n) for code, n in _STATUS_RE.findall(output)}
    error_section = _ERROR_SECTION_RE.search(output)
    errors = sum(int(n) for n in _ERROR_COUNT_RE.findall(error_section[1])) if error_section else 0
    return LoadResult(
        tool="hey", url=url, connections=connections, duration_s=float(total[1]),
        requests=sum(status_counts.values()) + errors, rps=float(rps[1]),
        p50_ms=percentiles["50"], p99_ms=percentiles["99"],
        status_counts=status_counts, errors=errors, target_rps=target_rps,
    )


def run_hey(url: str, duration_s: float, rate_rps: float, *, connections: int = 16, binary: str = "hey") -> LoadResult:
    """``rate_rps`` in total, spread over ``connections`` workers; redirects not followed."""
    per_worker_qps = rate_rps / connections
    args = [binary, "-z", f"{duration_s:g}s", "-c", str(connections), "-q", f"{per_worker_qps:.2f}", "-disable-redirects", url]
    output = subprocess.run(args, capture_output=True, text=True, check=True, timeout=duration_s + 60).stdout
    return parse_hey(output, url=url, connections=connections, target_rps=rate_rps)
