"""An offer's caps: how many conversions, how much payout and how many clicks it takes
per UTC day and month, for the whole offer and for each affiliate on it.

Stored as ``offers.caps`` (JSON of ``Caps``). ``None`` leaves a limit off.

- **Conversion caps** (``*_conversions``, ``*_payout_minor``) are checked by the
  conversion worker under a row lock on the counters (``conversion_counters``), so
  concurrent batches cannot overshoot. A conversion that would pass a limit takes
  ``over_cap``: ``"reject"`` (status rejected, reason ``cap_reached``) or ``"pending"``
  (held for review, reason ``cap_reached``). Counted: pending and approved conversions;
  one that is rejected or reversed later gives its place back.
- **Click caps** (``*_clicks``) are counted by the click ingest worker from the rows it
  inserted; once reached, the offer's links (or the affiliate's) send visitors to the
  fallback (outcome ``fallback_capped``) until the period ends. The edge learns it
  through the link config, so a cap can be passed by the clicks in flight meanwhile.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from core.catalog_rules import MONEY_MAX_MINOR
from core.errors import ValidationError

OverCapPolicy = Literal["reject", "pending"]
CAP_REACHED = "cap_reached"
_LIMIT_MAX = 10**12


class CapLimits(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    daily_conversions: int | None = None
    monthly_conversions: int | None = None
    daily_payout_minor: int | None = None
    monthly_payout_minor: int | None = None
    daily_clicks: int | None = None
    monthly_clicks: int | None = None

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            value = getattr(self, name)
            ceiling = MONEY_MAX_MINOR if name.endswith("_minor") else _LIMIT_MAX
            if value is not None and (type(value) is not int or not 0 <= value <= ceiling):
                raise ValidationError("invalid_caps", f"{name} must be an integer between 0 and {ceiling}")

    @property
    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in self.__struct_fields__)


class Caps(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """``offer`` bounds the whole offer; ``per_affiliate`` bounds each affiliate on it,
    unless ``affiliate_overrides`` has that affiliate (its limits replace
    ``per_affiliate`` entirely for it)."""

    offer: CapLimits = CapLimits()
    per_affiliate: CapLimits = CapLimits()
    affiliate_overrides: dict[str, CapLimits] = {}
    over_cap: OverCapPolicy = "reject"

    def __post_init__(self) -> None:
        if self.over_cap not in ("reject", "pending"):
            raise ValidationError("invalid_caps", "over_cap must be 'reject' or 'pending'")

    def for_affiliate(self, affiliate_id: str) -> CapLimits:
        return self.affiliate_overrides.get(affiliate_id, self.per_affiliate)


NO_CAPS = Caps()
