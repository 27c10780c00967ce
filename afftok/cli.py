"""The ``afftok`` command: the whole stack (``up``) or one component, as a deployment runs it."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import socket
import sys

from core.permissions import ROLES
from core.settings import load_settings


def _serve(factory: str, port: int, fd: int | None, workers: int) -> int:
    import uvicorn

    settings = load_settings()
    if factory.endswith("edge_app") and workers > 1 and settings.metrics_dir:
        os.makedirs(settings.metrics_dir, exist_ok=True)
    options = dict(
        factory=True, loop="uvloop", http="httptools", access_log=False, lifespan="on",
        log_level="warning", server_header=False, date_header=False, workers=workers,
    )
    if fd is None:
        uvicorn.run(factory, host=settings.host, port=port, **options)
        return 0
    if workers > 1:
        raise ValueError("--fd serves from one process; use a port for --workers > 1")
    # uvicorn's own fd= assumes a Unix socket, so accepted TCP connections would keep
    # Nagle's algorithm on (40 ms stalls on keep-alive responses written in two parts):
    # let the socket module read the inherited socket's real family instead.
    options.pop("workers")
    sock = socket.socket(fileno=fd)
    uvicorn.Server(uvicorn.Config(factory, **options)).run(sockets=[sock])
    return 0


def _cmd_edge(args) -> int:
    settings = load_settings()
    return _serve("afftok.asgi:edge_app", settings.edge_port, args.fd, args.workers or settings.edge_workers)


def _cmd_api(args) -> int:
    settings = load_settings()
    return _serve("afftok.asgi:api_app", settings.api_port, args.fd, args.workers or 1)


def _cmd_worker(args) -> int:
    import arq
    import uvloop

    from workers.settings import worker_settings

    # On uvloop like the edge and the api: asyncpg and redis run about a third faster
    # (arq runs on the loop set here).
    asyncio.set_event_loop(uvloop.new_event_loop())
    arq.run_worker(worker_settings(load_settings()))
    return 0


def _cmd_migrate(args) -> int:
    from afftok.stack import migrate

    applied = asyncio.run(migrate(load_settings()))
    print("applied: " + (", ".join(applied) if applied else "nothing, schema is current"))
    return 0


def _cmd_keys_create(args) -> int:
    from afftok.stack import create_key

    expires = dt.datetime.fromisoformat(args.expires) if args.expires else None
    key = asyncio.run(create_key(
        load_settings(), args.org, args.name, args.role, args.test, expires,
        advertiser_id=args.advertiser_id, affiliate_id=args.affiliate_id,
    ))
    print(key)
    return 0


def _cmd_export(args) -> int:
    from afftok.export_command import command

    return command(args, load_settings())


def _cmd_seed(args) -> int:
    from afftok.seed import command

    return command(args, load_settings())


def _cmd_deliveries(args) -> int:
    from afftok.deliveries_command import command

    return command(args, load_settings())


def _cmd_up(args) -> int:
    from afftok.supervisor import run_up

    return run_up(load_settings())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="afftok", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="run everything locally (embedded Postgres/Redis unless URLs are set)").set_defaults(func=_cmd_up)
    sub.add_parser("migrate", help="apply pending migrations to DATABASE_URL").set_defaults(func=_cmd_migrate)
    for name, func in (("edge", _cmd_edge), ("api", _cmd_api)):
        p = sub.add_parser(name, help=f"serve the {name}")
        p.add_argument("--fd", type=int, default=None, help="serve on an inherited listening socket")
        p.add_argument("--workers", type=int, default=0, help="processes (default from settings)")
        p.set_defaults(func=func)
    sub.add_parser("worker", help="run the arq workers (ingest, conversions, deliveries, maintenance)").set_defaults(func=_cmd_worker)
    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="create an API key and print it (shown once)")
    create.add_argument("--org", required=True, help="organization id")
    create.add_argument("--name", default="cli")
    create.add_argument("--role", default="admin", choices=ROLES)
    create.add_argument("--advertiser-id", default=None, help="the advertiser an advertiser key is scoped to")
    create.add_argument("--affiliate-id", default=None, help="the affiliate an affiliate key is scoped to")
    create.add_argument("--test", action="store_true", help="an aft_test_ key")
    create.add_argument("--expires", default=None, help="ISO 8601 expiry, e.g. 2027-01-01T00:00:00+00:00")
    create.set_defaults(func=_cmd_keys_create)
    from afftok.export_command import add_arguments as add_export_arguments

    export = sub.add_parser("export", help="export clicks, conversions or stats to a file (a background job)")
    add_export_arguments(export)
    export.set_defaults(func=_cmd_export)
    from afftok.seed import add_arguments as add_seed_arguments

    seed = sub.add_parser("seed", help="fill a database with a network and its traffic (1M, 10M, 100M clicks)")
    add_seed_arguments(seed)
    seed.set_defaults(func=_cmd_seed)
    from afftok.deliveries_command import add_arguments as add_deliveries_arguments

    deliveries = sub.add_parser("deliveries", help="pause, resume or inspect outbound postbacks and webhooks")
    add_deliveries_arguments(deliveries)
    deliveries.set_defaults(func=_cmd_deliveries)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a CLI prints one line, not a traceback, for expected failures
        if load_settings().debug:
            raise
        print(f"afftok {args.command}: {exc}", file=sys.stderr)
        return 1
