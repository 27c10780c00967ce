"""The baselines the edge is compared with, each served on a free 127.0.0.1 port.

(b) ``bare_starlette``: bench/bare_app.py under uvicorn with the edge's server settings.
(c) ``nginx``: ``return 302`` from one worker process, no access log.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from bench.processes import die_with_parent, free_port, listening_socket, stop, wait_until_answering

CLICK_PATH = "/c/bench-token?sub1=hello&sub2=world"

# The same server settings as the edge (afftok/cli.py ``_serve``).
_UVICORN_FLAGS = [
    "--factory", "--loop", "uvloop", "--http", "httptools", "--no-access-log",
    "--log-level", "warning", "--no-server-header", "--no-date-header", "--workers", "1",
]


@contextmanager
def bare_starlette() -> Iterator[str]:
    sock = listening_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}{CLICK_PATH}"
    args = [sys.executable, "-m", "uvicorn", "bench.bare_app:create_app", *_UVICORN_FLAGS, "--fd", str(sock.fileno())]
    proc = subprocess.Popen(args, pass_fds=(sock.fileno(),), preexec_fn=die_with_parent)
    sock.close()
    try:
        wait_until_answering(url, proc, timeout_s=30)
        yield url
    finally:
        stop(proc)


_NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            add_header Cache-Control no-store always;
            return 302 https://example.com/landing;
        }}
    }}
}}
"""


@contextmanager
def nginx(binary: str) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="afftok-bench-nginx-") as prefix:
        port = free_port()
        conf = Path(prefix) / "nginx.conf"
        conf.write_text(_NGINX_CONF.format(prefix=prefix, port=port))
        proc = subprocess.Popen([binary, "-p", prefix, "-e", f"{prefix}/error.log", "-c", str(conf)], preexec_fn=die_with_parent)
        url = f"http://127.0.0.1:{port}{CLICK_PATH}"
        try:
            wait_until_answering(url, proc, timeout_s=15)
            yield url
        finally:
            stop(proc)
