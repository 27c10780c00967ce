"""The SSRF guard at send time, against a canary listening on 127.0.0.1: endpoints that
got into the database with internal URLs (as if the save-time check were bypassed, or the
name rebound since) never reach it, whatever form the address takes; nor does a
redirect from an allowed receiver. The canary's port is allowed, so only the address
checks and the refusal to follow redirects stand between the worker and it."""

from __future__ import annotations

import pytest

from core.errors import ValidationError
from core.outbound_targets import OutboundPolicy
from tests.workers.conversions import make_world
from tests.workers.deliveries import Clock, add_endpoint, add_events, drain, local_policy, worker_parts
from tests.workers.receivers import Answer, receivers

FORMS = [
    "http://127.0.0.1:{port}/", "http://2130706433:{port}/", "http://0x7f000001:{port}/",
    "http://0177.0.0.1:{port}/", "http://127.1:{port}/", "http://[::ffff:127.0.0.1]:{port}/",
    "http://[::ffff:7f00:1]:{port}/", "http://[::1]:{port}/", "http://0.0.0.0:{port}/",
    "http://localhost:{port}/", "http://rebound.example:{port}/", "http://mixed.example:{port}/",
    "http://user:pw@127.0.0.1:{port}/", "http://127.0.0.1:{port}@hooks.example/",
    "http://169.254.169.254:{port}/latest/meta-data/", "http://[fd00:ec2::254]:{port}/",
    "http://100.100.100.200:{port}/", "http://192.0.0.192:{port}/",
]


async def _rebinding_resolver(host: str, port: int) -> list[str]:
    """A name that resolved to a public address when it was saved now points inside."""
    if host == "rebound.example":
        return ["127.0.0.1"]
    if host == "mixed.example":
        return ["93.184.216.34", "127.0.0.1"]
    if host == "localhost":
        return ["127.0.0.1", "::1"]
    raise ValidationError("unsafe_url", f"{host} does not resolve")


@pytest.mark.parametrize("kind", ["webhook", "postback"])
async def test_no_internal_address_form_reaches_the_canary(pool, settings, kind):
    world = await make_world(pool)
    clock = Clock()
    async with receivers(None) as (canary,):
        policy = OutboundPolicy(allowed_ports=frozenset({80, 443, canary.port}))  # no allow-list: the default
        urls = {}
        for n, form in enumerate(FORMS):
            url = form.format(port=canary.port)
            # One postback per event (the most specific): a goal each, so every form gets its own event.
            goal = f"form-{n}" if kind == "postback" else None
            urls[await add_endpoint(pool, world, kind, url, goal=goal)] = url
            if kind == "postback":
                await add_events(pool, world, 1, goal=goal)
        if kind == "webhook":
            await add_events(pool, world, 2)  # every webhook takes both
        dispatcher, sender = worker_parts(settings, pool, clock, policy, resolver=_rebinding_resolver)
        await drain(dispatcher, sender)
        clock.advance(3600)
        await drain(dispatcher, sender)
        assert canary.connections == 0

        # Not vacuous: the sender attempted every form (twice) and the guard refused each.
        attempts = await pool.fetch(
            "select d.endpoint_id, a.error, a.url, a.response_excerpt from delivery_attempts a"
            " join deliveries d on d.id = a.delivery_id")
        per_endpoint = {e: [a for a in attempts if a["endpoint_id"] == e] for e in urls}
        for endpoint_id, url in urls.items():
            tried = per_endpoint[endpoint_id]
            assert len(tried) == (4 if kind == "webhook" else 2), url
            assert {a["error"] for a in tried} == {"unsafe_url"}, url
            assert {a["url"] for a in tried} == {url} and all(a["response_excerpt"] for a in tried), url

        # And the canary does count a request the policy allows, from this very sender setup.
        await pool.execute("delete from delivery_endpoints")
        await add_endpoint(pool, world, kind, canary.url("/"))
        _, control = worker_parts(settings, pool, clock, local_policy(canary.port), resolver=_rebinding_resolver)
        await add_events(pool, world, 1)
        await drain(dispatcher, control)
        assert canary.connections == 1


async def test_a_redirect_to_an_internal_address_is_not_followed(pool, settings):
    world = await make_world(pool)
    clock = Clock()
    async with receivers(None) as (canary,):
        redirect = lambda _r: Answer(status=302, headers={"Location": canary.url("/")})  # noqa: E731
        async with receivers(redirect) as (allowed,):
            # Both ports and 127.0.0.1 allowed: only "never follow a redirect" protects the canary.
            await add_endpoint(pool, world, "webhook", allowed.url())
            dispatcher, sender = worker_parts(settings, pool, clock, local_policy(allowed.port, canary.port))
            await add_events(pool, world, 3)
            await drain(dispatcher, sender)
        assert len(allowed.requests) == 3
    assert canary.connections == 0
    assert {r["status"] for r in await pool.fetch("select status from deliveries")} == {"dead"}
