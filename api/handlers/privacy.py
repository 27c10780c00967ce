"""/v1/privacy: a data subject's export and erasure (GDPR access and erasure, CCPA).

Both are audited (``privacy.export`` / ``privacy.erase``). The audit row names the
selector's kind and the SHA-256 of its value, never the value itself: the log must not
become a second copy of the personal data it accounts for.
"""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import Response

from api.audit import audited
from api.auth import principal
from api.bodies import read_json
from api.responses import json_response
from api.schemas import PrivacySubjectIn
from core.audit import selector_digest
from core.privacy import Subject, subject_of
from core.store.privacy import erase_subject, export_subject


async def _subject(request: Request) -> Subject:
    body = await read_json(request, PrivacySubjectIn)
    return subject_of(click_id=body.click_id, ip=body.ip, customer_id=body.customer_id, email_sha256=body.email_sha256)


async def export(request: Request) -> Response:
    subject = await _subject(request)
    async with audited(request, subject.kind, selector_digest(subject.value)) as (conn, audit):
        exported = await export_subject(conn, principal(request).org_id, subject, dt.datetime.now(dt.timezone.utc))
        audit.after = {
            "sources": exported.sources, "clicks": len(exported.clicks), "conversions": len(exported.conversions),
        }
    response = json_response(exported)
    response.headers["cache-control"] = "no-store"
    return response


async def erase(request: Request) -> Response:
    subject = await _subject(request)
    async with audited(request, subject.kind, selector_digest(subject.value)) as (conn, audit):
        erased = await erase_subject(conn, principal(request).org_id, subject, dt.datetime.now(dt.timezone.utc))
        audit.after = {
            "sources": erased.sources, "clicks_scrubbed": erased.clicks_scrubbed,
            "conversions_scrubbed": erased.conversions_scrubbed,
        }
    return json_response(erased)
