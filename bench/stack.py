"""The AffTok stack under test: ``afftok up`` in a throw-away data directory.

``running_stack`` starts it with free ports, waits for ``up.json`` and always stops it
(SIGTERM, then waits) when the ``with`` block ends, whether by success, error or Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import msgspec

from bench.processes import die_with_parent, stop


class UpInfo(msgspec.Struct, kw_only=True):
    """What ``afftok up`` wrote to ``up.json`` once everything answered."""

    edge_url: str
    api_url: str
    database_url: str
    redis_url: str
    demo_link: str
    demo_api_key: str
    demo_org_id: str
    demo_postback_url: str  # the demo advertiser's, with a {click_id} placeholder
    pid: int


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_for_up_json(data_dir: Path, proc: subprocess.Popen, timeout_s: float) -> UpInfo:
    up_path, log_path = data_dir / "up.json", data_dir / "bench-up.log"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if up_path.exists():
            return msgspec.json.decode(up_path.read_bytes(), type=UpInfo)
        if proc.poll() is not None:
            raise RuntimeError(f"afftok up exited with code {proc.returncode}:\n{_log_tail(log_path)}\n(logs in {data_dir})")
        time.sleep(0.2)
    raise TimeoutError(f"afftok up wrote no up.json within {timeout_s}s:\n{_log_tail(log_path)}")


@contextmanager
def running_stack(timeout_s: float = 180, extra_env: dict[str, str] | None = None) -> Iterator[UpInfo]:
    data_dir = Path(tempfile.mkdtemp(prefix="afftok-bench-"))
    env = {
        **os.environ, "AFFTOK_DATA_DIR": str(data_dir), "AFFTOK_EDGE_PORT": "0", "AFFTOK_API_PORT": "0",
        # The bench times the api, not its limiter: thousands of sequential requests on
        # one key would otherwise be held to 600 a minute.
        "AFFTOK_API_RATE_LIMIT_PER_MINUTE": "0",
        **(extra_env or {}),
    }
    with open(data_dir / "bench-up.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "afftok", "up"], env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=die_with_parent,
        )
    failed = True
    try:
        yield _wait_for_up_json(data_dir, proc, timeout_s)
        failed = False
    finally:
        stop(proc, timeout_s=60)
        if failed:
            print(f"bench: stack logs kept in {data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def component_pids(up: UpInfo, component: str) -> list[int]:
    """Pids of the supervisor's children running ``afftok <component>``."""
    children = Path(f"/proc/{up.pid}/task/{up.pid}/children").read_text().split()
    pids = []
    for pid in map(int, children):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"afftok" in argv and component.encode() in argv:
            pids.append(pid)
    return pids


@contextmanager
def paused(pids: list[int]) -> Iterator[None]:
    """Stop ``pids`` (SIGSTOP) for the block, and always let them continue after."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
