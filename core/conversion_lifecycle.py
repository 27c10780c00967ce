"""A conversion's statuses and the moves between them (pure).

    pending ──► approved ──► reversed
       │
       └──────► rejected

- A postback may report ``approved``, ``pending`` or ``rejected``. On an approved
  conversion, ``rejected`` means the advertiser took it back: the move is to
  ``reversed`` (a chargeback, a refund). The same status again is a no-op.
- An operator may approve or reject a pending conversion and reverse an approved one.
- ``rejected`` and ``reversed`` are final: a later postback cannot revive them (a new
  sale is a new ``external_id``), and neither can an operator.

Earned money: a conversion earns its revenue and payout while it is ``approved``. Each
move's deltas are what it changed in earned money, so the deltas of a conversion's
history add up to what it earns now; pending → approved → reversed nets to zero.
"""

from __future__ import annotations

import msgspec

from core.errors import Conflict
from core.models import APPROVED, PENDING, REJECTED, REVERSED

_MOVES = {
    PENDING: {APPROVED, REJECTED},
    APPROVED: {REVERSED},
    REJECTED: set(),
    REVERSED: set(),
}
INVALID_TRANSITION = "invalid_transition"


class Move(msgspec.Struct, frozen=True):
    from_status: str
    to_status: str
    revenue_delta_minor: int
    payout_delta_minor: int


def target_of_postback(current: str, reported: str) -> str:
    """The status a postback reporting ``reported`` asks for, on a conversion at ``current``."""
    if current == APPROVED and reported == REJECTED:
        return REVERSED
    return reported


def is_allowed(current: str, target: str) -> bool:
    return target in _MOVES.get(current, set())


def earned(status: str, amount_minor: int) -> int:
    return amount_minor if status == APPROVED else 0


def move(current: str, target: str, revenue_minor: int, payout_minor: int) -> Move:
    """The move from ``current`` to ``target`` with its deltas; ``Conflict`` if not allowed."""
    if not is_allowed(current, target):
        raise Conflict(INVALID_TRANSITION, f"a {current} conversion cannot become {target}")
    return Move(
        current, target,
        earned(target, revenue_minor) - earned(current, revenue_minor),
        earned(target, payout_minor) - earned(current, payout_minor),
    )


def creation(status: str, revenue_minor: int, payout_minor: int) -> Move:
    """The first history row: from nothing to ``status``."""
    return Move("", status, earned(status, revenue_minor), earned(status, payout_minor))
