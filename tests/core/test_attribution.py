import datetime as dt
import uuid

import msgspec
import pytest

from core.attribution import (
    ATTRIBUTED, CLICK_AHEAD_MAX, OUTSIDE_WINDOW, REJECTED, UNKNOWN_CLICK, WAIT, Resolution, at_ms, id_instant,
    resolve,
)

T0 = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
KEPT_FROM = dt.datetime(2026, 3, 3, tzinfo=dt.timezone.utc)  # 90 days of clicks
ORG, OTHER_ORG, ADV, OTHER_ADV = (uuid.UUID(int=n) for n in (1, 2, 3, 4))
S = dt.timedelta(seconds=1)


def id_at(instant: dt.datetime) -> str:
    return "%012x" % int((instant - at_ms(0)) / dt.timedelta(milliseconds=1)) + "ab" * 16


class Click(msgspec.Struct, frozen=True):
    org_id: uuid.UUID
    advertiser_id: uuid.UUID
    clicked_at: dt.datetime
    attribution_window_s: int


def seen(*, org=ORG, adv=ADV, clicked_at=T0 - 60 * S, window_s=3600) -> Click:
    return Click(org, adv, clicked_at, window_s)


WAIT_S = 600
CLICK_AT = T0 - 60 * S
CLICK = id_at(CLICK_AT)

# (click id, found, received, now, resolution)
CASES = [
    (CLICK, seen(), T0, T0, Resolution(ATTRIBUTED)),
    (CLICK, seen(window_s=60), T0, T0, Resolution(ATTRIBUTED)),  # received at the window's last instant
    (CLICK, seen(window_s=59), T0, T0, Resolution(REJECTED, OUTSIDE_WINDOW)),
    (CLICK, seen(window_s=59), T0, T0 + 9999 * S, Resolution(REJECTED, OUTSIDE_WINDOW)),
    # a stored click is attributed even when older than retention (not dropped yet)
    (id_at(KEPT_FROM - S), seen(clicked_at=KEPT_FROM - S, window_s=31_536_000), T0, T0, Resolution(ATTRIBUTED)),
    # not (yet) stored: wait until the later of click and receipt, plus wait_s
    (CLICK, None, T0, T0, Resolution(WAIT, give_up_at=T0 + WAIT_S * S)),
    (CLICK, None, T0, T0 + (WAIT_S - 1) * S, Resolution(WAIT, give_up_at=T0 + WAIT_S * S)),
    (CLICK, None, T0, T0 + WAIT_S * S, Resolution(REJECTED, UNKNOWN_CLICK)),
    (id_at(T0 + 5 * S), None, T0, T0, Resolution(WAIT, give_up_at=T0 + (WAIT_S + 5) * S)),  # edges' clocks differ
    (id_at(T0 + CLICK_AHEAD_MAX), None, T0, T0, Resolution(WAIT, give_up_at=T0 + CLICK_AHEAD_MAX + WAIT_S * S)),
    (id_at(KEPT_FROM), None, T0, T0, Resolution(WAIT, give_up_at=T0 + WAIT_S * S)),
    # another organization's or advertiser's click is a missing one, in every respect
    (CLICK, seen(org=OTHER_ORG), T0, T0, Resolution(WAIT, give_up_at=T0 + WAIT_S * S)),
    (CLICK, seen(adv=OTHER_ADV), T0, T0, Resolution(WAIT, give_up_at=T0 + WAIT_S * S)),
    (CLICK, seen(org=OTHER_ORG), T0, T0 + WAIT_S * S, Resolution(REJECTED, UNKNOWN_CLICK)),
    (CLICK, seen(org=OTHER_ORG, window_s=60), T0, T0, Resolution(WAIT, give_up_at=T0 + WAIT_S * S)),
    # an id that cannot name a click still on its way: unknown at once, never waiting
    (id_at(T0 + CLICK_AHEAD_MAX + S), None, T0, T0, Resolution(REJECTED, UNKNOWN_CLICK)),  # after its sale
    (id_at(KEPT_FROM - S), None, T0, T0, Resolution(REJECTED, UNKNOWN_CLICK)),  # older than clicks are kept
    (id_at(KEPT_FROM - S), seen(org=OTHER_ORG, clicked_at=KEPT_FROM - S), T0, T0, Resolution(REJECTED, UNKNOWN_CLICK)),
    ("f" * 44, None, T0, T0, Resolution(REJECTED, UNKNOWN_CLICK)),  # our shape, an instant past year 9999
    ("0" * 43, None, T0, T0, Resolution(REJECTED, UNKNOWN_CLICK)),
    ("G" * 44, None, T0, T0, Resolution(REJECTED, UNKNOWN_CLICK)),
    (CLICK.upper(), None, T0, T0, Resolution(REJECTED, UNKNOWN_CLICK)),
    ("ABC-123", None, T0, T0, Resolution(REJECTED, UNKNOWN_CLICK)),
    ("", None, T0, T0, Resolution(REJECTED, UNKNOWN_CLICK)),
    (None, None, T0, T0, Resolution(REJECTED, UNKNOWN_CLICK)),
]


@pytest.mark.parametrize(("click_id", "found", "received_at", "now", "expected"), CASES)
def test_what_a_postback_resolves_to(click_id, found, received_at, now, expected):
    assert resolve(click_id, found, org_id=ORG, advertiser_id=ADV, received_at=received_at, now=now,
                   wait_s=WAIT_S, kept_from=KEPT_FROM) == expected
