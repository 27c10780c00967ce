"""What an export (or a listing) selects: the filters of each kind, validated once.

The same structs read the query string of ``GET /v1/clicks`` and of the streamed
exports, and the ``filters`` of ``POST /v1/exports``; a background job keeps them in
``export_jobs.request`` with the clicks window already resolved, so running the job
twice selects the same rows.

Clicks are partitioned by day and read by time: ``from``/``to`` are instants (half-open
``[from, to)``), by default the 24 hours before now, at most ``CLICKS_MAX_RANGE`` apart.
Conversions take the listing's filters; without ``created_from``/``created_to`` they
export every conversion the caller may see. Stats take the stats query's parameters
as given (``GET /v1/stats``), checked by the stats module when the export runs.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from core.errors import ValidationError
from core.export_format import ExportFormat

ExportKind = Literal["clicks", "conversions", "stats"]
KINDS: tuple[str, ...] = ("clicks", "conversions", "stats")
CLICKS_DEFAULT_RANGE = dt.timedelta(hours=24)
CLICKS_MAX_RANGE = dt.timedelta(days=31)

Instant = Annotated[dt.datetime, Meta(tz=True)]
Text = Annotated[str, Meta(min_length=1, max_length=200)]
CountryCode = Annotated[str, Meta(pattern="^[A-Z]{2}$")]
ClickOutcome = Literal[
    "redirect", "fallback_paused", "fallback_unapproved", "fallback_geo", "fallback_capped", "unavailable",
]
Device = Literal["desktop", "mobile", "tablet", "bot", "other"]
ConversionStatus = Literal["pending", "approved", "rejected", "reversed"]


class Filters(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class ClickFilters(Filters):
    from_: Instant | None = msgspec.field(default=None, name="from")
    to: Instant | None = None
    offer_id: uuid.UUID | None = None
    affiliate_id: uuid.UUID | None = None
    link_id: uuid.UUID | None = None
    country: CountryCode | None = None
    device: Device | None = None
    sub1: Text | None = None
    outcome: ClickOutcome | None = None

    def resolved(self, now: dt.datetime) -> ClickFilters:
        """The same filters with the window fixed: defaults filled in from ``now``, checked."""
        to = self.to or now
        since = self.from_ or to - CLICKS_DEFAULT_RANGE
        if since >= to:
            raise ValidationError("invalid_range", "from must be before to")
        if to - since > CLICKS_MAX_RANGE:
            raise ValidationError("range_too_long", f"clicks are read at most {CLICKS_MAX_RANGE.days} days at a time")
        return msgspec.structs.replace(self, from_=since, to=to)


class ConversionFilters(Filters):
    status: ConversionStatus | None = None
    offer_id: uuid.UUID | None = None
    affiliate_id: uuid.UUID | None = None
    advertiser_id: uuid.UUID | None = None
    click_id: Text | None = None
    external_id: Text | None = None
    reason: Text | None = None
    created_from: Instant | None = None
    created_to: Instant | None = None

    def resolved(self, now: dt.datetime) -> ConversionFilters:
        if self.created_from and self.created_to and self.created_from >= self.created_to:
            raise ValidationError("invalid_range", "created_from must be before created_to")
        return self


FILTERS: dict[str, type[Filters]] = {"clicks": ClickFilters, "conversions": ConversionFilters}
StatsParams = dict[str, Annotated[str, Meta(max_length=2000)]]


class ExportRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The body of ``POST /v1/exports``, and what the job keeps of it."""

    kind: ExportKind
    format: ExportFormat
    filters: Annotated[dict[str, Any], Meta(max_length=30)] = {}


def click_filters(params: dict[str, Any], now: dt.datetime) -> ClickFilters:
    return convert_filters(ClickFilters, params).resolved(now)


def convert_filters(kind: type[Filters], params: dict[str, Any]) -> Any:
    """``params`` (query strings or JSON values) as ``kind``; bad ones: 422 naming the field."""
    try:
        return msgspec.convert(params, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise ValidationError("invalid_filter", str(exc)) from None


# The arq function the worker registers for POST /v1/exports (workers.exports); its one
# argument is the job's id as text.
EXPORT_JOB_FUNCTION = "run_export_job"
