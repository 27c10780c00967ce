"""Attribution (pure): what a new postback's click id resolves to.

``resolve`` decides, at the worker's ``now``, from what the lookup found under the id
(``ClickSeen``, whoever's click it is) and the instant the id carries (``core.ids``):

- a click of the postback's organization, on an offer of its advertiser → ``attributed``
  when received within the offer's attribution window (received ≤ clicked + window),
  else ``rejected`` ``outside_window``;
- anything else (no click under the id, or another organization's or advertiser's
  click: exactly the same, an id from another tenant behaves like a missing one):
  - ``rejected`` ``unknown_click`` at once, nothing to wait for, when the id cannot
    name a click that may still reach Postgres: not of our shape or an instant a
    datetime cannot hold; more than ``CLICK_AHEAD_MAX`` after the postback (no click
    follows its sale; the margin covers the clocks of different edges); older than the
    organization keeps clicks (``kept_from``, ``core.retention``);
  - else ``wait``: the click may still be on its way through the clicks stream, until
    ``give_up_at`` = the later of the click's instant and the postback's receipt, plus
    ``wait_s``; from then on ``rejected`` ``unknown_click``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Protocol

import msgspec

from core.ids import click_id_time_ms, is_click_id

UNKNOWN_CLICK = "unknown_click"
OUTSIDE_WINDOW = "outside_window"

ATTRIBUTED = "attributed"
WAIT = "wait"
REJECTED = "rejected"

CLICK_AHEAD_MAX = dt.timedelta(hours=1)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_INSTANT_END_MS = 253_402_300_800_000  # 10000-01-01: Python's datetime ends before


class ClickSeen(Protocol):
    """A stored click found under the postback's click id, with its offer's terms."""

    org_id: uuid.UUID
    advertiser_id: uuid.UUID  # the offer's
    clicked_at: dt.datetime
    attribution_window_s: int


class Resolution(msgspec.Struct, frozen=True):
    outcome: str  # ATTRIBUTED | WAIT | REJECTED
    reason: str | None = None  # REJECTED: UNKNOWN_CLICK or OUTSIDE_WINDOW
    give_up_at: dt.datetime | None = None  # WAIT: when it becomes UNKNOWN_CLICK


def at_ms(ms: int) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=ms)


def id_instant(click_id: str | None) -> dt.datetime | None:
    """The instant an id of our shape carries; None for any other value."""
    if not click_id or not is_click_id(click_id):
        return None
    ms = click_id_time_ms(click_id)
    return at_ms(ms) if ms < _INSTANT_END_MS else None


def give_up_at(click_at: dt.datetime | None, received_at: dt.datetime, wait_s: int) -> dt.datetime:
    """When a postback waiting for its click becomes ``unknown_click``."""
    return max(click_at or received_at, received_at) + dt.timedelta(seconds=wait_s)


def resolve(
    click_id: str | None, found: ClickSeen | None, *, org_id: uuid.UUID, advertiser_id: uuid.UUID,
    received_at: dt.datetime, now: dt.datetime, wait_s: int, kept_from: dt.datetime,
) -> Resolution:
    """What a new postback (``org_id``, ``advertiser_id``, received at ``received_at``)
    naming ``click_id`` resolves to at ``now``; ``found``: the click stored under that id."""
    if found is not None and found.org_id == org_id and found.advertiser_id == advertiser_id:
        if received_at > found.clicked_at + dt.timedelta(seconds=found.attribution_window_s):
            return Resolution(REJECTED, OUTSIDE_WINDOW)
        return Resolution(ATTRIBUTED)
    click_at = id_instant(click_id)
    if click_at is None or click_at > received_at + CLICK_AHEAD_MAX or click_at < kept_from:
        return Resolution(REJECTED, UNKNOWN_CLICK)
    until = give_up_at(click_at, received_at, wait_s)
    if now < until:
        return Resolution(WAIT, give_up_at=until)
    return Resolution(REJECTED, UNKNOWN_CLICK)
