"""``afftok up``: the whole stack on one machine, for development and benchmarks.

Starts Postgres and Redis (from DATABASE_URL / REDIS_URL, else servers on PATH, else
the embedded ones from PyPI), applies migrations, seeds the demo tenant, starts the
edge, the workers and the api as child processes, writes ``up.json`` and waits.
SIGINT or SIGTERM stops everything it started. Children die with the supervisor even
if it is killed (parent-death signal), and a later start cleans up what a killed run
left behind (a lock held by the kernel, not a pid file).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import msgspec

from afftok.servers import PostgresServer, RedisServer, die_with_parent, free_port
from afftok.stack import migrate, seed_demo_and_publish
from core.settings import Settings

def _listening_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _wait_http_ok(url: str, timeout_s: float, procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{' '.join(proc.args[-3:])} exited with code {proc.returncode} during start-up")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout_s}s")


class _Stack:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.data_dir = settings.data_dir.resolve()
        self.servers: list = []
        self.children: list[subprocess.Popen] = []
        self.stopping = threading.Event()

    def start_storage(self) -> tuple[str, str]:
        database_url, redis_url = self.settings.database_url, self.settings.redis_url
        if not database_url:
            pg = PostgresServer(self.data_dir / "postgres").start()
            self.servers.append(pg)
            database_url = pg.url
            print(f"  postgres  {pg.url}  ({pg.source})", flush=True)
        if not redis_url:
            rd = RedisServer(self.data_dir / "redis").start()
            self.servers.append(rd)
            redis_url = rd.url
            print(f"  redis     {rd.url}  ({rd.source})", flush=True)
        return database_url, redis_url

    def spawn(self, component: str, env: dict, sock: socket.socket | None = None) -> subprocess.Popen:
        args = [sys.executable, "-m", "afftok", component]
        pass_fds: tuple[int, ...] = ()
        if sock is not None:
            args += ["--fd", str(sock.fileno())]
            pass_fds = (sock.fileno(),)
        log = open(self.data_dir / f"{component}.log", "ab")
        proc = subprocess.Popen(
            args, env=env, pass_fds=pass_fds, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=die_with_parent,
        )
        log.close()
        self.children.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.children:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.children:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for server in reversed(self.servers):
            try:
                server.stop()
            except Exception as exc:  # keep stopping the rest
                print(f"afftok up: stopping {type(server).__name__} failed: {exc}", file=sys.stderr)
        (self.data_dir / "up.json").unlink(missing_ok=True)


def run_up(settings: Settings) -> int:
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = open(data_dir / "up.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"afftok up: another 'afftok up' is running with data directory {data_dir}", file=sys.stderr)
        return 1
    (data_dir / "up.json").unlink(missing_ok=True)  # left by a run that was killed
    stack = _Stack(settings)

    def on_signal(signum, frame):
        stack.stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        return _run(stack)
    finally:
        print("afftok up: stopping…", flush=True)
        stack.stop()
        print("afftok up: stopped", flush=True)


def _run(stack: _Stack) -> int:
    settings = stack.settings
    print("afftok up: starting storage", flush=True)
    database_url, redis_url = stack.start_storage()
    resolved = msgspec.structs.replace(settings, database_url=database_url, redis_url=redis_url, data_dir=stack.data_dir)
    asyncio.run(migrate(resolved))
    edge_sock = _listening_socket(settings.host, settings.edge_port)
    api_sock = _listening_socket(settings.host, settings.api_port)
    edge_url = f"http://{settings.host}:{edge_sock.getsockname()[1]}"
    api_url = f"http://{settings.host}:{api_sock.getsockname()[1]}"
    public_edge_url = settings.public_edge_url or edge_url
    resolved = msgspec.structs.replace(resolved, public_edge_url=public_edge_url)
    demo = asyncio.run(seed_demo_and_publish(resolved))
    worker_metrics_port = settings.worker_metrics_port or free_port()
    metrics_dir = stack.data_dir / "metrics" / "edge"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    for stale in metrics_dir.glob("*.json"):
        stale.unlink()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "AFFTOK_DATA_DIR": str(stack.data_dir),
        "AFFTOK_PUBLIC_EDGE_URL": public_edge_url,
        "AFFTOK_METRICS_DIR": str(metrics_dir),
        "AFFTOK_WORKER_METRICS_PORT": str(worker_metrics_port),
    }
    edge = stack.spawn("edge", env, edge_sock)
    api = stack.spawn("api", env, api_sock)
    worker = stack.spawn("worker", env)
    edge_sock.close()
    api_sock.close()
    _wait_http_ok(f"{edge_url}/readyz", 60, [edge, api, worker])
    _wait_http_ok(f"{api_url}/healthz", 60, [edge, api, worker])
    demo_link = f"{public_edge_url}/c/{demo.link_token}?sub1=hello&sub2=world"
    # The demo advertiser's ready postback: put a click id from the demo link's redirect in.
    demo_postback_url = (
        f"{public_edge_url}/postback?token={demo.postback_token}&click_id={{click_id}}"
        "&external_id=demo-order-1&amount=25.00&currency=USD"
    )
    up = {
        "edge_url": edge_url, "api_url": api_url, "database_url": database_url, "redis_url": redis_url,
        "demo_link": demo_link, "demo_api_key": demo.api_key, "demo_org_id": str(demo.org_id),
        "demo_postback_url": demo_postback_url,
        "worker_metrics_url": f"http://{settings.host}:{worker_metrics_port}/metrics",
        "pid": os.getpid(),
    }
    up_path = stack.data_dir / "up.json"
    tmp = up_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(up, indent=2))
    os.chmod(tmp, 0o600)  # it holds a key
    tmp.replace(up_path)
    print(
        "\nAffTok is running.\n"
        f"  tracking link  {demo_link}\n"
        f"  postback       {demo_postback_url}\n"
        "                 (replace {click_id} with the click_id= of the link's redirect)\n"
        f"  api            {api_url}   (OpenAPI: {api_url}/openapi.json)\n"
        f"  api key        {demo.api_key}\n"
        f"  try            curl -i '{demo_link}'\n"
        f"                 curl -H 'Authorization: Bearer {demo.api_key}' {api_url}/v1/offers\n"
        f"                 curl -H 'Authorization: Bearer {demo.api_key}' {api_url}/v1/conversions\n"
        f"  logs           {stack.data_dir}/*.log\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )
    return _watch(stack)


def _watch(stack: _Stack) -> int:
    while not stack.stopping.wait(0.5):
        for proc in stack.children:
            if proc.poll() is not None:
                name = proc.args[3] if len(proc.args) > 3 else proc.args
                print(f"afftok up: {name} exited with code {proc.returncode}; see {stack.data_dir}/{name}.log", file=sys.stderr)
                return 1
    return 0
