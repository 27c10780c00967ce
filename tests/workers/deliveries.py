"""What the delivery tests share: endpoints and outbox events written straight to Postgres
(so the send-time guard is tested on its own), a movable clock, and the worker parts
built around them."""

from __future__ import annotations

import datetime as dt
import ipaddress
import random
import uuid

import msgspec

from core.outbound_targets import OutboundPolicy
from core.store.conversions import OutboxRow, insert_outbox
from core.store.deliveries import DELIVERIES_CHANNEL, notify
from workers.delivery_dispatcher import OutboxDispatcher
from workers.delivery_sender import DeliverySender

SECRET = "aft_whsec_" + "A" * 43
OLD_SECRET = "aft_whsec_" + "B" * 43


class Clock:
    def __init__(self, start: dt.datetime | None = None):
        self.now = start or dt.datetime.now(dt.timezone.utc).replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def local_policy(*ports: int, allow_loopback: bool = True) -> OutboundPolicy:
    """The operator's policy for receivers on this machine: their ports, and 127.0.0.1."""
    return OutboundPolicy(allowed_ports=frozenset({80, 443, *ports}),
                          allow_networks=(ipaddress.ip_network("127.0.0.1/32"),) if allow_loopback else ())


def worker_parts(settings, pool, clock: Clock, outbound: OutboundPolicy, resolver=None, **overrides):
    s = msgspec.structs.replace(settings, **overrides) if overrides else settings
    kwargs = {"resolver": resolver} if resolver else {}
    dispatcher = OutboxDispatcher(s, pool, clock=clock)
    sender = DeliverySender(s, pool, clock=clock, rng=random.Random(7), outbound=outbound, **kwargs)
    return dispatcher, sender


async def add_endpoint(pool, world, kind: str, url: str, *, affiliate: bool = True, event_types=None,
                       offer_id=None, goal=None, secrets=(SECRET,)) -> uuid.UUID:
    if event_types is None:
        event_types = (["conversion.created", "conversion.approved", "conversion.rejected", "conversion.reversed"]
                       if kind == "postback" else
                       ["conversion.created", "conversion.approved", "conversion.rejected", "conversion.reversed",
                        "cap.reached", "endpoint.disabled"])
    async with pool.acquire() as conn, conn.transaction():
        endpoint_id = await conn.fetchval(
            "insert into delivery_endpoints (org_id, kind, affiliate_id, offer_id, goal, url, event_types)"
            " values ($1, $2, $3, $4, $5, $6, $7) returning id",
            uuid.UUID(world.org_id), kind, uuid.UUID(world.affiliate_id) if affiliate else None,
            offer_id, goal, url, event_types)
        if kind == "webhook":
            for n, secret in enumerate(secrets):  # the first is current, the others rotated out
                await conn.execute(
                    "insert into delivery_endpoint_secrets (org_id, endpoint_id, secret, created_at, expires_at)"
                    " values ($1, $2, $3, now() - make_interval(secs => $4), $5)",
                    uuid.UUID(world.org_id), endpoint_id, secret, float(n),
                    None if n == 0 else dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1))
    return endpoint_id


async def add_events(pool, world, count: int, event_type: str = "conversion.created", **payload) -> list[uuid.UUID]:
    """``count`` affiliate events as the conversion worker writes them; their event ids."""
    rows = [OutboxRow(
        org_id=uuid.UUID(world.org_id), event_type=event_type, conversion_id=None,
        affiliate_id=uuid.UUID(world.affiliate_id), offer_id=uuid.UUID(world.offer_id),
        payload={"conversion_id": str(uuid.uuid4()), "status": "approved", "click_id": f"click-{n}",
                 "external_id": f"order-{n}", "goal": None, "payout_minor": 1250, "currency": "USD",
                 "offer_id": world.offer_id, "affiliate_id": world.affiliate_id, **payload},
    ) for n in range(count)]
    async with pool.acquire() as conn, conn.transaction():
        await insert_outbox(conn, rows)
        ids = await conn.fetch("select event_id from outbox_events order by id desc limit $1", count)
    return [r["event_id"] for r in ids]


async def replay_endpoint(pool, endpoint_id: uuid.UUID, now: dt.datetime) -> int:
    """What ``POST /v1/deliveries/replay`` does for an endpoint's dead deliveries."""
    async with pool.acquire() as conn, conn.transaction():
        result = await conn.execute(
            "update deliveries set status = 'pending', next_attempt_at = $2::timestamptz, retry_until = $2::timestamptz + interval '72 hours',"
            " dead_at = null where endpoint_id = $1 and status = 'dead'", endpoint_id, now)
        await notify(conn, DELIVERIES_CHANNEL)
    return int(result.split()[-1])


async def drain(dispatcher, sender, rounds: int = 20) -> None:
    """Dispatch and send until nothing is due (burst mode)."""
    while await dispatcher.dispatch_once():
        pass
    for _ in range(rounds):
        if not await sender.send_once():
            return
