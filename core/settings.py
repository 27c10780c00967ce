"""The one settings object: read once per process from the environment, passed down.

No other module reads ``os.environ``. Secrets are kept out of ``repr``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import msgspec

REPO_ROOT = Path(__file__).resolve().parents[1]


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str = ""
    redis_url: str = ""
    data_dir: Path = Path(".afftok")
    migrations_dir: Path = REPO_ROOT / "migrations"
    host: str = "127.0.0.1"
    edge_port: int = 8080
    api_port: int = 8000
    edge_workers: int = 1
    public_edge_url: str = ""
    debug: bool = False

    # Redis naming: every key starts with this prefix (tests give each test its own).
    redis_prefix: str = "afftok"
    click_stream_shards: int = 1

    # Edge.
    country_header: str = ""  # e.g. "cf-ipcountry"; empty = use the offline database
    trust_forwarded_for: bool = False
    cookie_name: str = "afftok_cid"
    cookie_max_age_s: int = 30 * 24 * 3600
    redis_write_timeout_ms: int = 300
    click_batch_max: int = 1000
    query_max_bytes: int = 8192
    spool_fsync: bool = True
    spool_replay_interval_ms: int = 1000
    metrics_dir: str = ""  # set when several edge processes share one /metrics
    postback_body_max_bytes: int = 16_384  # a larger POST /postback body: 413
    postback_batch_max: int = 500  # postbacks per conversions stream entry

    # Ingest worker.
    ingest_batch_max: int = 5000
    ingest_batch_max_wait_ms: int = 200
    ingest_reclaim_idle_ms: int = 30_000
    ingest_group: str = "ingest"
    ingest_concurrency: int = 2  # consumers per worker process: one decodes while one commits
    consumer_name: str = ""  # empty = "<hostname>-<pid>"
    ingest_reclaim_interval_ms: int = 10_000  # how often to XAUTOCLAIM a dead consumer's entries
    ingest_retry_max_backoff_ms: int = 5_000  # ceiling of the back-off while Postgres is away
    partition_days_ahead: int = 7  # the maintenance job keeps this many daily partitions ready
    stats_sub1_limit: int = 1000  # distinct sub1 values per offer in the stats; later ones count as '(other)'

    # Conversion worker.
    conversion_group: str = "conversions"
    conversion_batch_max: int = 500  # postbacks per transaction
    conversion_batch_max_wait_ms: int = 100
    conversion_concurrency: int = 2  # consumers per worker process
    # A postback whose click is not in Postgres waits (retried every
    # conversion_wait_retry_ms) up to this long after the later of click and postback,
    # then is stored rejected with reason unknown_click.
    conversion_click_wait_s: int = 600
    conversion_wait_retry_ms: int = 1_000
    datacenter_cidrs_path: str = ""  # operator's list of datacenter/proxy CIDRs, one per line
    worker_metrics_port: int = 0  # serve the worker's Prometheus metrics here; 0 = off

    # Delivery worker: affiliate postbacks and webhooks from the outbox.
    delivery_allowed_ports: str = "80,443"  # ports outbound URLs may use, comma-separated
    # Internal receivers the operator allows (CIDRs or addresses, comma-separated); empty =
    # only globally routable addresses. Cloud metadata addresses stay refused regardless.
    delivery_allow_cidrs: str = ""
    delivery_connect_timeout_ms: int = 3_000
    delivery_read_timeout_ms: int = 10_000
    delivery_max_age_s: int = 72 * 3600  # retried until this long after the event (or a replay)
    delivery_retry_base_s: int = 5  # the first retry; each later one waits about twice as long
    delivery_retry_max_s: int = 7_200  # the longest wait between two attempts
    delivery_disable_after_failures: int = 100  # an endpoint failing this many attempts in a row...
    delivery_disable_after_s: int = 24 * 3600  # ...for at least this long is disabled
    delivery_batch_max: int = 200  # deliveries claimed per sender transaction
    delivery_concurrency: int = 64  # requests in flight per sender
    delivery_poll_interval_ms: int = 1_000  # besides NOTIFY wake-ups
    delivery_keep_days: int = 30  # delivered and dead deliveries (and their attempts) are kept this long

    # API.
    api_body_max_bytes: int = 1_000_000
    # Per API key (or dashboard user): requests a minute on average, in bursts of up to
    # api_rate_limit_burst; 0 = unlimited. Redis slower than the timeout: let through.
    api_rate_limit_per_minute: int = 600
    api_rate_limit_burst: int = 100
    api_rate_limit_timeout_ms: int = 100
    api_db_pool_max_size: int = 10
    app_database_url: str = ""  # the api's login (a member of afftok_app); empty = database_url
    # Dashboard users' bearer tokens (JWT): HS256 with this secret and/or RS256 with the
    # keys of this JWKS file; neither set = only API keys are accepted.
    jwt_hs256_secret: str = ""  # a secret: never in repr
    jwt_jwks_path: str = ""
    jwt_audience: str = "authenticated"
    jwt_issuer: str = ""  # empty = any issuer
    jwt_leeway_s: int = 30
    # Background exports (POST /v1/exports): the worker writes files here, the api serves
    # them from here (share it when they run on different machines). Empty = <data_dir>/exports.
    export_dir: str = ""

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def conversion_spool_dir(self) -> Path:
        return self.data_dir / "spool-conversions"

    @property
    def export_path(self) -> Path:
        return Path(self.export_dir) if self.export_dir else self.data_dir / "exports"

    def __repr__(self) -> str:  # never print credentials
        return f"Settings(data_dir={str(self.data_dir)!r}, edge_port={self.edge_port}, api_port={self.api_port})"

    __str__ = __repr__


_ENV = {
    "database_url": "DATABASE_URL",
    "redis_url": "REDIS_URL",
}


def _env_name(field: str) -> str:
    return _ENV.get(field, "AFFTOK_" + field.upper())


def _coerce(raw: str, kind: type, name: str):
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off", ""}:
            return False
        raise ValueError(f"{name} must be a boolean, got {raw!r}")
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if kind is Path:
        return Path(raw)
    return raw


def load_settings(env: Mapping[str, str] | None = None, **overrides) -> Settings:
    """Build settings from ``env`` (default: the process environment) plus overrides."""
    env = os.environ if env is None else env
    values: dict = {}
    for field in msgspec.structs.fields(Settings):
        name = _env_name(field.name)
        if name in env:
            values[field.name] = _coerce(env[name], field.type if isinstance(field.type, type) else type(field.default), name)
    values.update(overrides)
    return Settings(**values)
