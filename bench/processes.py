"""Child processes for a benchmark: listen, start, wait until they answer, stop."""

from __future__ import annotations

import ctypes
import http.client
import signal
import socket
import subprocess
import time
from urllib.parse import urlsplit


def listening_socket() -> socket.socket:
    """A socket on a free 127.0.0.1 port, ready to hand to a child (no port race)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_status(url: str, timeout_s: float = 1.0) -> int:
    """GET ``url`` without following redirects (a Location may point off this machine)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    try:
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        return conn.getresponse().status
    finally:
        conn.close()


def wait_until_answering(url: str, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with code {proc.returncode} before answering {url}")
        try:
            http_status(url)
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout_s}s")


def stop(proc: subprocess.Popen, timeout_s: float = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn``: the child gets SIGTERM if the harness dies, even by SIGKILL."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def require_loopback(url: str) -> str:
    """Load goes to this machine only."""
    if urlsplit(url).hostname != "127.0.0.1":
        raise ValueError(f"refusing to send load to {url}: only 127.0.0.1 is allowed")
    return url
