"""Outbound deliveries, measured: one delivery worker's throughput, and conversion →
affiliate postback latency (``.venv/bin/python -m bench.deliveries``, a few minutes).

It starts a local receiver (``bench.receiver``, its own process) and the stack
(``afftok up``) with the receiver's address allow-listed, then:

1. **Raw client**: ``--events`` signed webhook POSTs straight from this process through
   ``workers.outbound_http.send`` (the SSRF check and the signature made per request, as
   the worker does), ``delivery_concurrency`` in flight: what the HTTP part costs alone.
   Run before and after step 2; the worker is compared with their mean.
2. **Worker throughput**: deliveries paused, a webhook endpoint and ``--events`` outbox
   events written straight into Postgres; once the dispatcher has made every pending
   delivery, deliveries resume and the run is timed until all are ``delivered``
   (count polled every 100 ms). The receiver counts distinct event ids and duplicates;
   the CPU each process used meanwhile is sampled. ``--analyze`` runs ``ANALYZE
   deliveries`` before resuming, as autovacuum would a while after such a burst.
3. **Latency**: an affiliate postback endpoint for the demo affiliate; real clicks made
   through the demo link (and waited for in Postgres); then postbacks at a fixed rate,
   each naming its own click. Latency = arrival at the receiver − the postback's send
   time, matched by click id; the stages between come from the rows' timestamps.

Targets (issue 6): p99 ≤ 2 s, and ≥ 500 deliveries/s from one worker.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import math
import time
import uuid
from typing import Iterable
from urllib.parse import parse_qs, urlsplit

import asyncpg
import msgspec
import psutil
import uvloop

from bench.machine import cpu_busy_pct, this_machine
from bench.paced_sender import send_paced
from bench.postbacks import make_click_ids, new_prefix
from bench.processes import require_loopback
from bench.receiver import Receiver, receiver
from bench.stack import UpInfo, component_pids, running_stack
from core.delivery_requests import CONVERSION_EVENTS, EVENT_TYPES, validate_postback_template, webhook_headers
from core.outbound_targets import OutboundPolicy, resolve_target
from core.settings import Settings
from core.store.deliveries import OUTBOX_CHANNEL, notify, set_paused
from workers.outbound_http import SendFailed, send

SECRET = "aft_whsec_bench_" + "b" * 40
WEBHOOK_PATH, RAW_PATH, POSTBACK_PATH = "/wh", "/raw", "/pb"
_DEFAULTS = {f.name: f.default for f in msgspec.structs.fields(Settings)}
POLL_S = 0.1

_EVENTS = """
insert into outbox_events (org_id, event_type, affiliate_id, offer_id, payload)
select $1::uuid, 'conversion.created', $2::uuid, $3::uuid, jsonb_build_object(
    'conversion_id', gen_random_uuid()::text, 'status', 'approved', 'reason', null,
    'click_id', 'bench-' || g, 'external_id', 'bench-' || g, 'goal', null,
    'payout_minor', 1250, 'currency', 'USD', 'offer_id', $3::uuid::text, 'affiliate_id', $2::uuid::text)
from generate_series(1, $4::int) g
"""
_BY_STATUS = "select count(*) from deliveries where endpoint_id = $1 and status = $2"
_SPAN = """
select extract(epoch from max(d.delivered_at) - min(a.started_at))::float8 as span_s,
       count(*) filter (where a.attempt > 1) as retries, count(*) as attempts,
       count(distinct d.next_attempt_at) as claims  -- a claim leases its rows until one shared instant
from deliveries d join delivery_attempts a on a.delivery_id = d.id where d.endpoint_id = $1
"""
_STAGES = """
select cv.click_id, extract(epoch from cv.received_at)::float8 as accepted_s,
       extract(epoch from cv.created_at)::float8 as row_s, extract(epoch from o.dispatched_at)::float8 as dispatched_s,
       extract(epoch from a.started_at)::float8 as attempt_s
from conversions cv
join outbox_events o on o.conversion_id = cv.id and o.event_type = 'conversion.created'
join deliveries d on d.event_id = o.event_id and d.endpoint_id = $2
join delivery_attempts a on a.delivery_id = d.id and a.attempt = 1
where cv.external_id like $1 || '%'
"""


TARGET_P99_S = 2.0
TARGET_PER_S = 500


class Summary(msgspec.Struct, kw_only=True):
    count: int
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    max_s: float | None


class Matched(msgspec.Struct, kw_only=True):
    latencies_s: list[float]  # first arrival − send, one per click id that arrived, sorted
    first_arrival: dict[str, float]
    missing: int  # sent, never arrived
    duplicates: int  # the same event id arrived again
    other_events: int  # another event id for a click already seen
    unknown: int  # arrivals naming no click this run sent


class Stage(msgspec.Struct, kw_only=True):
    name: str
    summary: Summary


class CpuUsage(msgspec.Struct, kw_only=True):
    wall_s: float
    cores: dict[str, float]  # CPU seconds per wall second, per process group


class RawBaseline(msgspec.Struct, kw_only=True):
    when: str  # "before" | "after" the worker's run
    path: str
    requests: int
    concurrency: int
    seconds: float
    per_s: float
    failures: int
    received: int = 0


class Throughput(msgspec.Struct, kw_only=True):
    events: int
    pending: int  # pending deliveries the dispatcher made while paused
    dispatch_s: float
    delivered: int
    dead: int
    deliver_s: float  # resume → every delivery delivered (polled every 100 ms)
    per_s: float
    db_span_s: float | None  # first attempt started → last delivered_at, from the rows
    attempts: int
    retries: int
    claims: int  # sender transactions that claimed the deliveries
    analyzed: bool  # ANALYZE deliveries ran before resuming
    cpu: CpuUsage
    received: int = 0
    received_distinct: int = 0


class Timings(msgspec.Struct, kw_only=True):
    sent: int
    accepted: int
    delivered: int
    sent_at: dict[str, float]  # click id → time.time() just before its postback was written
    rows: list[dict]  # per conversion: click_id, accepted_s, row_s, dispatched_s, attempt_s


class Latency(msgspec.Struct, kw_only=True):
    sent: int
    accepted: int
    delivered: int  # delivered rows of the postback endpoint
    matched: int
    missing: int
    duplicates: int
    other_events: int
    unknown: int
    total: Summary
    stages: list[Stage]


def percentile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summarize(values: Iterable[float]) -> Summary:
    ordered = sorted(values)
    return Summary(count=len(ordered), p50_s=percentile(ordered, 0.5), p95_s=percentile(ordered, 0.95),
                   p99_s=percentile(ordered, 0.99), max_s=ordered[-1] if ordered else None)


def query_param(target: str, name: str) -> str | None:
    values = parse_qs(urlsplit(target).query).get(name)
    return values[0] if values else None


def match_arrivals(sent_at: dict[str, float], arrivals: Iterable[tuple[str | None, str, float]]) -> Matched:
    """Match (click id, event id, arrival time) to the send time of each click id."""
    first: dict[str, tuple[float, str]] = {}
    seen: set[tuple[str, str]] = set()
    duplicates = other_events = unknown = 0
    for click_id, event_id, at_s in sorted(arrivals, key=lambda a: a[2]):
        if click_id not in sent_at:
            unknown += 1
        elif (click_id, event_id) in seen:
            duplicates += 1
        elif click_id in first:
            other_events += 1
            seen.add((click_id, event_id))
        else:
            first[click_id] = (at_s, event_id)
            seen.add((click_id, event_id))
    return Matched(
        latencies_s=sorted(at_s - sent_at[c] for c, (at_s, _) in first.items()),
        first_arrival={c: at_s for c, (at_s, _) in first.items()}, missing=len(sent_at.keys() - first.keys()),
        duplicates=duplicates, other_events=other_events, unknown=unknown)


_STAGE_NAMES = ("postback sent → edge accepted", "edge accepted → conversion row", "conversion row → dispatched",
                "dispatched → first attempt", "first attempt → received")


def stages_of(sent_at: dict[str, float], first_arrival: dict[str, float], rows: Iterable[dict]) -> list[Stage]:
    """Where the time of each matched postback went, from the rows' timestamps (one clock)."""
    gaps: list[list[float]] = [[] for _ in _STAGE_NAMES]
    for r in rows:
        click_id = r["click_id"]
        if click_id not in sent_at or click_id not in first_arrival:
            continue
        points = (sent_at[click_id], r["accepted_s"], r["row_s"], r["dispatched_s"], r["attempt_s"],
                  first_arrival[click_id])
        for gap, (a, b) in zip(gaps, zip(points, points[1:])):
            gap.append(b - a)
    return [Stage(name=name, summary=summarize(gap)) for name, gap in zip(_STAGE_NAMES, gaps)]


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    ms = seconds * 1000
    return f"{ms:,.0f} ms" if abs(ms) >= 10 else f"{ms:.1f} ms"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _cores(cpu: CpuUsage) -> str:
    return ", ".join(f"{name} {cores:.2f}" for name, cores in cpu.cores.items() if cores >= 0.01)


def report(machine, busy_pct: float, raws: list[RawBaseline], tp: Throughput, lat: Latency, args,
           receiver_errors: int) -> tuple[str, str, bool]:
    """(terminal text, markdown for bench/README.md, every check passed). The worker is
    compared with the mean of the raw client's runs before and after it."""
    raw_per_s = sum(r.per_s for r in raws) / len(raws)
    all_in = tp.delivered == tp.events and tp.received_distinct == tp.events
    rate_ok = tp.per_s >= TARGET_PER_S and all_in
    p99 = lat.total.p99_s
    latency_ok = p99 is not None and p99 <= TARGET_P99_S and lat.missing == 0 and lat.accepted == lat.sent
    ratio = tp.per_s / raw_per_s
    checks = [
        ("one worker's deliveries/s", f"≥ {TARGET_PER_S}/s",
         f"{tp.per_s:,.0f}/s ({tp.delivered:,} in {tp.deliver_s:.1f} s; {ratio:.2f}× the raw client's "
         f"{raw_per_s:,.0f}/s)", rate_ok),
        ("conversion → postback received p99", f"≤ {TARGET_P99_S * 1000:,.0f} ms",
         f"{_ms(p99)} (p50 {_ms(lat.total.p50_s)}, max {_ms(lat.total.max_s)}; {lat.matched:,} of {lat.sent:,} "
         f"matched, {lat.missing} missing)", latency_ok),
    ]
    rows = [
        *(f"| raw client, {raw.when} (`outbound_http.send`, {raw.concurrency} in flight, no Postgres) | "
          f"{raw.requests:,} | {raw.seconds:.1f} s | {raw.per_s:,.0f} | {raw.per_s / raw_per_s:.2f}× | "
          f"{raw.received:,} received, {raw.failures} failed |" for raw in raws),
        f"| delivery worker (dispatch, claim, send, record) | {tp.events:,} | {tp.deliver_s:.1f} s | "
        f"{tp.per_s:,.0f} | {ratio:.2f}× | {tp.received:,} received, {tp.received_distinct:,} distinct event ids, "
        f"{tp.received - tp.received_distinct} duplicates, {tp.dead} dead, {tp.retries} retries |",
    ]
    stage_rows = [f"| {s.name} | {_ms(s.summary.p50_s)} | {_ms(s.summary.p95_s)} | {_ms(s.summary.p99_s)} | "
                  f"{_ms(s.summary.max_s)} |" for s in lat.stages]
    t = lat.total
    stage_rows.append(f"| **postback sent → received (total)** | {_ms(t.p50_s)} | {_ms(t.p95_s)} | {_ms(t.p99_s)} | "
                      f"{_ms(t.max_s)} |")
    lines = [
        f"Machine: {machine.describe()}; {busy_pct:.0f}% CPU busy just before the run.", "",
        f"Dispatch: {tp.pending:,} pending deliveries made from {tp.events:,} outbox events in {tp.dispatch_s:.1f} s "
        f"({tp.events / tp.dispatch_s:,.0f} events/s). Deliveries span in the rows (first attempt → last "
        f"delivered_at): {tp.db_span_s or 0:.2f} s, in {tp.claims:,} claims ({tp.attempts / max(1, tp.claims):.0f} "
        f"deliveries each on average){'; ANALYZE deliveries ran before resuming' if tp.analyzed else ''}. "
        f"CPU while the worker delivered (cores): {_cores(tp.cpu)}.", "",
        "| run | deliveries | time | per s | vs raw client | at the receiver |", "|---|---:|---:|---:|---:|---|",
        *rows, "",
        f"Latency: {lat.sent:,} postbacks at {args.postback_rate:,.0f}/s over {args.connections} connections, "
        f"{lat.accepted:,} accepted (202), {lat.delivered:,} postback deliveries delivered; at the receiver "
        f"{lat.matched:,} matched by click id, {lat.missing} missing, {lat.duplicates} duplicates, "
        f"{lat.other_events} other events, {lat.unknown} unknown; receiver errors {receiver_errors}.", "",
        "| stage (per postback) | p50 | p95 | p99 | max |", "|---|---:|---:|---:|---:|", *stage_rows, "",
        "| check | target | measured | result |", "|---|---|---|---|",
        *(f"| {name} | {target} | {measured} | {_verdict(ok)} |" for name, target, measured, ok in checks),
    ]
    terminal = "\n".join([*(f"{_verdict(ok)}  {name}: {measured} (target {target})"
                            for name, target, measured, ok in checks), "", *lines])
    return terminal, "\n".join(lines), all(ok for *_, ok in checks)


def allow_list_env(port: int) -> dict[str, str]:
    return {"AFFTOK_DELIVERY_ALLOW_CIDRS": "127.0.0.1/32", "AFFTOK_DELIVERY_ALLOWED_PORTS": f"80,443,{port}"}


async def wait_count(conn: asyncpg.Connection, sql: str, *args, expected: int, timeout_s: float,
                     settle_s: float = 15) -> int:
    """Poll ``sql``'s count every 100 ms until it reaches ``expected``, stops moving for
    ``settle_s``, or ``timeout_s`` passes; return the last count."""
    deadline = time.monotonic() + timeout_s
    last, last_change = -1, time.monotonic()
    while True:
        count = await conn.fetchval(sql, *args)
        now = time.monotonic()
        if count >= expected or now >= deadline:
            return count
        if count != last:
            last, last_change = count, now
        elif now - last_change >= settle_s:
            return count
        await asyncio.sleep(POLL_S)



async def wait_for_empty_outbox(conn: asyncpg.Connection, timeout_s: float) -> None:
    """Let the dispatcher take what the demo left, so the bench's endpoint gets only its events."""
    deadline = time.monotonic() + timeout_s
    while await conn.fetchval("select count(*) from outbox_events where dispatched_at is null"):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"the outbox did not empty within {timeout_s}s")
        await asyncio.sleep(POLL_S)


async def add_endpoint(conn: asyncpg.Connection, org_id: str, kind: str, url: str,
                       affiliate_id: uuid.UUID | None, event_types: tuple[str, ...]) -> uuid.UUID:
    async with conn.transaction():
        endpoint_id = await conn.fetchval(
            "insert into delivery_endpoints (org_id, kind, affiliate_id, url, event_types, description)"
            " values ($1, $2, $3, $4, $5, 'bench') returning id", uuid.UUID(org_id), kind, affiliate_id, url,
            list(event_types))
        if kind == "webhook":
            await conn.execute("insert into delivery_endpoint_secrets (org_id, endpoint_id, secret) values ($1, $2, $3)",
                               uuid.UUID(org_id), endpoint_id, SECRET)
    return endpoint_id


async def demo_link_parties(conn: asyncpg.Connection, org_id: str) -> tuple[uuid.UUID, uuid.UUID]:
    """(affiliate, offer) of the demo link: whose postbacks the conversions send."""
    row = await conn.fetchrow("select affiliate_id, offer_id from links where org_id = $1 order by created_at limit 1",
                              uuid.UUID(org_id))
    return row["affiliate_id"], row["offer_id"]


async def set_switch(conn: asyncpg.Connection, paused: bool) -> None:
    async with conn.transaction():
        await set_paused(conn, paused, "bench")


class CpuSampler:
    """CPU seconds spent by the stack's processes (grouped), the receiver and this process."""

    def __init__(self, up: UpInfo, receiver_pid: int):
        self.worker_pids = set(component_pids(up, "worker"))
        self.up_pid, self.receiver_pid, self.database_url = up.pid, receiver_pid, up.database_url
        self.start = self._snapshot()
        self.started = time.perf_counter()

    def _group(self, proc) -> str:
        if proc.pid in self.worker_pids:
            return "worker"
        if proc.pid == self.receiver_pid:
            return "receiver"
        if proc.pid == psutil.Process().pid:
            return "bench"
        return "postgres" if proc.name().startswith("postgres") else "other"

    def _postgres(self) -> list:
        """pg_ctl detaches Postgres from the supervisor: find it by its listening port."""
        port = urlsplit(self.database_url).port
        for c in psutil.net_connections("tcp"):
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port and c.pid:
                postmaster = psutil.Process(c.pid)
                return [postmaster, *postmaster.children()]
        return []

    def _snapshot(self) -> dict[int, tuple[str, float]]:
        procs = psutil.Process(self.up_pid).children(recursive=True) + self._postgres()
        procs += [psutil.Process(self.receiver_pid), psutil.Process()]
        seen = {}
        for proc in procs:
            try:
                times = proc.cpu_times()
                seen[proc.pid] = (self._group(proc), times.user + times.system)
            except psutil.Error:
                continue
        return seen

    def stop(self) -> CpuUsage:
        wall_s, end = time.perf_counter() - self.started, self._snapshot()
        cores: dict[str, float] = {}
        for pid, (group, cpu_s) in end.items():
            cores[group] = cores.get(group, 0.0) + (cpu_s - self.start.get(pid, (group, 0.0))[1]) / wall_s
        return CpuUsage(wall_s=wall_s, cores=dict(sorted(cores.items(), key=lambda kv: -kv[1])))


async def measure_worker(up: UpInfo, rx: Receiver, events: int, *, analyze: bool = False) -> tuple[Throughput, uuid.UUID]:
    conn = await asyncpg.connect(up.database_url)
    try:
        await wait_for_empty_outbox(conn, timeout_s=30)
        affiliate_id, offer_id = await demo_link_parties(conn, up.demo_org_id)
        await set_switch(conn, paused=True)
        endpoint_id = await add_endpoint(conn, up.demo_org_id, "webhook", f"http://127.0.0.1:{rx.port}{WEBHOOK_PATH}",
                                         None, EVENT_TYPES)
        started = time.perf_counter()
        async with conn.transaction():
            await conn.execute(_EVENTS, uuid.UUID(up.demo_org_id), affiliate_id, offer_id, events)
            await notify(conn, OUTBOX_CHANNEL)
        pending = await wait_count(conn, _BY_STATUS, endpoint_id, "pending", expected=events, timeout_s=120)
        dispatch_s = time.perf_counter() - started
        print(f"  dispatched {pending:,} pending deliveries in {dispatch_s:.1f} s; resuming", flush=True)
        if analyze:  # what autovacuum does a while after the burst: fresh statistics for the claim's plan
            await conn.execute("analyze deliveries")
        cpu = CpuSampler(up, rx.pid)
        started = time.perf_counter()
        await set_switch(conn, paused=False)
        delivered = await wait_count(conn, _BY_STATUS, endpoint_id, "delivered", expected=events,
                                     timeout_s=max(120.0, events / 100))
        deliver_s = time.perf_counter() - started
        usage = cpu.stop()
        span = await conn.fetchrow(_SPAN, endpoint_id)
        dead = await conn.fetchval(_BY_STATUS, endpoint_id, "dead")
        await conn.execute("update delivery_endpoints set status = 'disabled' where id = $1", endpoint_id)
    finally:
        await conn.close()
    return Throughput(
        events=events, pending=pending, dispatch_s=dispatch_s, delivered=delivered, dead=dead, deliver_s=deliver_s,
        per_s=delivered / deliver_s, db_span_s=span["span_s"], attempts=span["attempts"], retries=span["retries"],
        claims=span["claims"], analyzed=analyze, cpu=usage), endpoint_id


async def measure_raw_client(port: int, requests: int, concurrency: int, when: str) -> RawBaseline:
    """The worker's HTTP part alone: guard, signature and one ``send`` per request."""
    policy = OutboundPolicy.from_text(f"80,443,{port}", "127.0.0.1/32")
    path = f"{RAW_PATH}/{when}"
    url = f"http://127.0.0.1:{port}{path}"
    body = msgspec.json.encode({"id": str(uuid.uuid4()), "type": "conversion.created", "data": {"payout_minor": 1250}})
    numbers, failures = iter(range(requests)), []
    connect_s, read_s = _DEFAULTS["delivery_connect_timeout_ms"] / 1000, _DEFAULTS["delivery_read_timeout_ms"] / 1000

    async def one_connection_at_a_time() -> None:
        for _ in numbers:
            event_id, delivery_id = uuid.uuid4(), uuid.uuid4()
            headers = webhook_headers(body, [SECRET], int(time.time()), event_id, "conversion.created", delivery_id)
            try:
                target = await resolve_target(url, policy)
                reply = await send(target, "POST", body, headers, connect_timeout_s=connect_s, read_timeout_s=read_s)
                if reply.status != 200:
                    failures.append(str(reply.status))
            except SendFailed as exc:
                failures.append(exc.kind)

    started = time.perf_counter()
    await asyncio.gather(*(one_connection_at_a_time() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    return RawBaseline(when=when, path=path, requests=requests, concurrency=concurrency, seconds=seconds, per_s=requests / seconds,
                       failures=len(failures))


def postback_path_maker(postback_url: str, click_ids: list[str], prefix: str, sent_at: dict[str, float]):
    """``path_of`` for ``send_paced``: each index names its own click, and the wall-clock
    time just before its request is written is kept per click id (the send time)."""
    parts = urlsplit(postback_url)
    kept = "&".join(p for p in parts.query.split("&") if not p.startswith(("click_id=", "external_id=")))
    base = f"{parts.path}?{kept}"

    def path_of(index: int) -> str:
        click_id = click_ids[index]
        sent_at[click_id] = time.time()
        return f"{base}&click_id={click_id}&external_id={prefix}{index}"

    return path_of


async def send_postbacks(up: UpInfo, rx: Receiver, click_ids: list[str], rate_rps: float,
                         connections: int) -> tuple[Timings, uuid.UUID]:
    conn = await asyncpg.connect(up.database_url)
    try:
        affiliate_id, _ = await demo_link_parties(conn, up.demo_org_id)
        template = validate_postback_template(f"http://127.0.0.1:{rx.port}{POSTBACK_PATH}?cid={{click_id}}"
                                              f"&e={{event_id}}&s={{status}}")
        endpoint_id = await add_endpoint(conn, up.demo_org_id, "postback", template, affiliate_id, CONVERSION_EVENTS)
        clicks = await wait_count(conn, "select count(*) from clicks where click_id = any($1::text[])", click_ids,
                                  expected=len(click_ids), timeout_s=60)
        print(f"  {clicks:,} of {len(click_ids):,} clicks in Postgres; sending postbacks at {rate_rps:,.0f}/s", flush=True)
        prefix, sent_at = new_prefix("dlv"), {}
        parts = urlsplit(up.demo_postback_url)
        path_of = postback_path_maker(up.demo_postback_url, click_ids, prefix, sent_at)
        sent = await asyncio.wait_for(
            send_paced(parts.hostname, parts.port, path_of, count=len(click_ids), rate_rps=rate_rps,
                       connections=connections),
            timeout=len(click_ids) / rate_rps + 60)
        accepted = sum(s.status == 202 for s in sent)
        delivered = await wait_count(conn, _BY_STATUS, endpoint_id, "delivered", expected=accepted, timeout_s=120,
                                     settle_s=10)
        rows = [dict(r) for r in await conn.fetch(_STAGES, prefix, endpoint_id)]
    finally:
        await conn.close()
    return Timings(sent=len(sent), accepted=accepted, delivered=delivered, sent_at=sent_at, rows=rows), endpoint_id


def latency_of(timings: Timings, arrivals: list) -> Latency:
    postbacks = [(query_param(a.target, "cid"), a.event_id, a.at_s) for a in arrivals
                 if a.target.startswith(POSTBACK_PATH + "?")]
    matched = match_arrivals(timings.sent_at, postbacks)
    return Latency(
        sent=timings.sent, accepted=timings.accepted, delivered=timings.delivered, matched=len(matched.latencies_s),
        missing=matched.missing, duplicates=matched.duplicates, other_events=matched.other_events,
        unknown=matched.unknown, total=summarize(matched.latencies_s),
        stages=stages_of(timings.sent_at, matched.first_arrival, timings.rows))


def receiver_counts(arrivals: list, path: str) -> tuple[int, int]:
    """(requests, distinct event ids) the receiver saw on ``path``."""
    ids = [a.event_id for a in arrivals if a.target.split("?", 1)[0] == path]
    return len(ids), len(set(ids))


def run(args: argparse.Namespace) -> int:
    busy = cpu_busy_pct()
    with receiver() as rx, running_stack(extra_env=allow_list_env(rx.port)) as up:
        for url in (up.demo_link, up.demo_postback_url, up.api_url):
            require_loopback(url)
        raws = []
        for when in ("before", "after"):
            print(f"raw client ({when} the worker): {args.events:,} webhook POSTs, {args.concurrency} in flight",
                  flush=True)
            raws.append(uvloop.run(measure_raw_client(rx.port, args.events, args.concurrency, when)))
            if when == "before":
                print(f"worker: {args.events:,} outbox events → webhook deliveries", flush=True)
                throughput, _ = uvloop.run(measure_worker(up, rx, args.events, analyze=args.analyze))
        count = int(args.postback_rate * args.postback_duration)
        print(f"latency: making {count:,} clicks through the demo link", flush=True)
        click_ids = make_click_ids(up.demo_link, count)
        timings, _ = uvloop.run(send_postbacks(up, rx, click_ids, args.postback_rate, args.connections))
        received = rx.collect()
    throughput.received, throughput.received_distinct = receiver_counts(received.arrivals, WEBHOOK_PATH)
    for raw in raws:
        raw.received, _ = receiver_counts(received.arrivals, raw.path)
    latency = latency_of(timings, received.arrivals)
    terminal, markdown, passed = report(this_machine(), busy, raws, throughput, latency, args, received.errors)
    print(f"\n{terminal}\n\nmarkdown for bench/README.md:\n\n{markdown}")
    return 0 if passed else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.deliveries", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000, help="deliveries in the throughput runs (default 20000)")
    parser.add_argument("--concurrency", type=int, default=_DEFAULTS["delivery_concurrency"],
                        help="raw client's requests in flight (default: delivery_concurrency's default)")
    parser.add_argument("--postback-rate", type=float, default=100, help="postbacks per second (default 100)")
    parser.add_argument("--postback-duration", type=float, default=20, help="seconds of postbacks (default 20)")
    parser.add_argument("--connections", type=int, default=16, help="sender connections for the postbacks (default 16)")
    parser.add_argument("--analyze", action="store_true",
                        help="ANALYZE deliveries before resuming (fresh planner statistics, as autovacuum gives later)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("bench: interrupted; the stack and the receiver are stopped", file=sys.stderr)
        return 130


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt  # so the stack and the receiver are stopped on the way out


if __name__ == "__main__":
    raise SystemExit(main())
