"""The machine a benchmark ran on, as a results table needs to state it."""

from __future__ import annotations

import os
import platform
import sys
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
