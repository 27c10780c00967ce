from __future__ import annotations

import msgspec
import pytest

from core.redis_keys import RedisKeys
from workers.click_ingest import ClickIngest


class StepClock:
    """Milliseconds that move only when told to (or by ``step_ms`` per reading)."""

    def __init__(self, step_ms: float = 0.0):
        self.now_ms = 1_000_000.0
        self.step_ms = step_ms

    def __call__(self) -> float:
        self.now_ms += self.step_ms
        return self.now_ms


@pytest.fixture
def ingest_settings(settings):
    # Small batches and waits keep the tests fast; reclaim is on demand (idle 0 ms is
    # opted into per test).
    return msgspec.structs.replace(
        settings, ingest_batch_max=1000, ingest_batch_max_wait_ms=30, ingest_reclaim_idle_ms=60_000,
        ingest_reclaim_interval_ms=0,
    )


@pytest.fixture
def make_consumer(ingest_settings, pool, redis, keys: RedisKeys):
    def build(name: str = "c1", *, settings=None, pool_=None, clock_ms=None, **overrides) -> ClickIngest:
        s = msgspec.structs.replace(settings or ingest_settings, **overrides)
        kwargs = {"clock_ms": clock_ms} if clock_ms else {}
        return ClickIngest(s, pool_ or pool, redis, keys, consumer=name, **kwargs)

    return build
