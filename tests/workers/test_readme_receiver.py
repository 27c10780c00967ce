"""The README's receiver example, run as written against a real signed webhook."""

from __future__ import annotations

import re
import time

from core.settings import REPO_ROOT
from tests.workers.conversions import make_world
from tests.workers.deliveries import OLD_SECRET, SECRET, Clock, add_endpoint, add_events, drain, local_policy, worker_parts
from tests.workers.receivers import receivers


def _readme_verified():
    readme = (REPO_ROOT / "README.md").read_text()
    [code] = [block for block in re.findall(r"```python\n(.*?)```", readme, re.S) if "def verified(" in block]
    assert len(code.strip().splitlines()) <= 12  # "a few lines"
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace["verified"]


async def test_the_readme_receiver_accepts_a_real_webhook_and_nothing_else(pool, settings):
    verified = _readme_verified()
    world = await make_world(pool)
    async with receivers(None) as (hook,):
        await add_endpoint(pool, world, "webhook", hook.url(), secrets=(SECRET, OLD_SECRET))
        dispatcher, sender = worker_parts(settings, pool, Clock(), local_policy(hook.port))
        await add_events(pool, world, 1)
        await drain(dispatcher, sender)
    [request] = hook.requests
    header, body = request.headers["afftok-signature"], request.body
    assert verified(SECRET, header, body)
    assert verified(OLD_SECRET, header, body)  # during a rotation either secret works
    assert not verified("aft_whsec_" + "C" * 43, header, body)
    assert not verified(SECRET, header, body + b" ")
    assert not verified(SECRET, header.replace("v1=", "v2="), body)
    t = int(time.time())
    stale = re.sub(r"t=\d+", f"t={t - 3600}", header)
    assert not verified(SECRET, stale, body)
    assert not verified(SECRET, "garbage", body)
