"""/v1/organization: the caller's organization and its data settings.

Changing ``ip_truncate`` takes effect at the edge when the organization's link configs
are republished, which happens here right after the change commits.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api import queries
from api.audit import audited
from api.auth import principal
from api.bodies import read_json
from api.postback_auth import publish_organization_auth
from api.resources import publish_affected, tenant_transaction
from api.responses import json_response
from api.schemas import OrganizationPatch, given_fields
from core.store.audit import lock_target
from core.store.organizations import update_org_data_settings


async def get(request: Request) -> Response:
    org_id = principal(request).org_id
    async with tenant_transaction(request, org_id) as conn:
        return json_response(await queries.get_organization(conn, org_id))


async def update(request: Request) -> Response:
    changes = given_fields(await read_json(request, OrganizationPatch))
    org_id = principal(request).org_id
    async with audited(request, "organization", org_id) as (conn, audit):
        await lock_target(conn, "organizations", org_id)
        audit.before = await queries.get_organization(conn, org_id)
        await update_org_data_settings(conn, org_id, **changes)
        organization = audit.after = await queries.get_organization(conn, org_id)
    if "ip_truncate" in changes:  # even unchanged: sending it again repairs a failed publish
        await publish_affected(request, org_id)
        await publish_organization_auth(request, org_id)  # the pixel truncates by it too
    return json_response(organization)
