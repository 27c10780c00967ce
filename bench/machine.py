"""The machine a benchmark ran on, as a results table needs to state it."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import msgspec


class Machine(msgspec.Struct, kw_only=True):
    cpus: int
    cpu_model: str
    python: str
    kernel: str

    def describe(self) -> str:
        return f"{self.cpus} × {self.cpu_model}, Linux {self.kernel}, Python {self.python}"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def this_machine() -> Machine:
    return Machine(
        cpus=len(os.sched_getaffinity(0)), cpu_model=_cpu_model(),
        python=sys.version.split()[0], kernel=platform.release(),
    )


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def cpu_busy_pct(sample_s: float = 1.0) -> float:
    """How busy the machine is (all CPUs, %) over ``sample_s``: other load skews every figure."""
    busy0, total0 = _cpu_times()
    time.sleep(sample_s)
    busy1, total1 = _cpu_times()
    return 100.0 * (busy1 - busy0) / max(1, total1 - total0)
