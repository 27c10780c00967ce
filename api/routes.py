"""The route table: every endpoint, the action it needs, and its body and response types.

The app's routes and the OpenAPI document are both built from this one list, so an
endpoint cannot exist without being documented and authorized.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from api import delivery_schemas as ds
from api import schemas as s
from api.handlers import advertisers, affiliates, api_keys, audit_log, health, links, offers, organization, privacy
from api.handlers import clicks, conversions, exports, signing_secrets, usage
from api.handlers import affiliate_postbacks, deliveries, stats, webhook_secrets, webhooks
from core.exports import ExportRequest
from core.stats import StatsRequest
from core.store.affiliates import Affiliate
from core.store.api_keys import ApiKey
from core.store.delivery_endpoints import DeliveryEndpoint
from core.store.offers import Offer, OfferApproval
from core.store.postback_secrets import SigningSecretInfo
from core.store.privacy import SubjectErasure, SubjectExport

Handler = Callable[[Request], Awaitable[Response]]


class Endpoint(msgspec.Struct, frozen=True, kw_only=True):
    method: str
    path: str
    handler: Handler
    action: str | None  # None: public, no credentials needed
    summary: str
    response: Any
    status: int = 200
    body: Any = None
    query: Any = None


def _e(method: str, path: str, handler: Handler, action: str | None, summary: str, response: Any, **kw: Any) -> Endpoint:
    return Endpoint(method=method, path=path, handler=handler, action=action, summary=summary, response=response, **kw)


ENDPOINTS: list[Endpoint] = [
    _e("GET", "/healthz", health.healthz, None, "Liveness", s.Health),
    _e("POST", "/v1/advertisers", advertisers.create, "advertisers:write", "Create an advertiser", s.AdvertiserOut,
       status=201, body=s.AdvertiserCreate),
    _e("GET", "/v1/advertisers", advertisers.list_, "advertisers:read", "List advertisers", s.AdvertiserOutPage,
       query=s.PageQuery),
    _e("GET", "/v1/advertisers/{advertiser_id}", advertisers.get, "advertisers:read",
       "Get an advertiser, with its GET postback URL template", s.AdvertiserOut),
    _e("POST", "/v1/advertisers/{advertiser_id}/postback-token", advertisers.issue_postback_token, "advertisers:write",
       "Create or replace the advertiser's postback token (token=… in GET postbacks); the token is in this response"
       " only and the previous one stops working at once", s.PostbackTokenIssued, body=s.PostbackTokenIssue),
    _e("POST", "/v1/advertisers/{advertiser_id}/signing-secrets", signing_secrets.create, "advertisers:write",
       "Create a signing secret for AffTok-Signature HMACs; the secret is in this response only; the secrets"
       " current until now keep working for grace_period_s (24 hours)", s.SigningSecretCreated, status=201,
       body=s.SigningSecretCreate),
    _e("GET", "/v1/advertisers/{advertiser_id}/signing-secrets", signing_secrets.list_, "advertisers:read",
       "The advertiser's signing secrets that verify now (last four characters, never the secret)",
       s.SigningSecretList),
    _e("DELETE", "/v1/advertisers/{advertiser_id}/signing-secrets/{secret_id}", signing_secrets.revoke,
       "advertisers:write", "Revoke a signing secret at once", SigningSecretInfo),
    _e("POST", "/v1/affiliates", affiliates.create, "affiliates:write", "Create an affiliate", Affiliate,
       status=201, body=s.AffiliateCreate),
    _e("GET", "/v1/affiliates", affiliates.list_, "affiliates:read", "List affiliates", s.AffiliatePage,
       query=s.PageQuery),
    _e("GET", "/v1/affiliates/{affiliate_id}", affiliates.get, "affiliates:read", "Get an affiliate", Affiliate),
    _e("PATCH", "/v1/affiliates/{affiliate_id}", affiliates.update, "affiliates:write",
       "Update an affiliate (status changes republish its links)", Affiliate, body=s.AffiliatePatch),
    _e("POST", "/v1/offers", offers.create, "offers:write", "Create an offer", Offer, status=201, body=s.OfferCreate),
    _e("GET", "/v1/offers", offers.list_, "offers:read", "List offers", s.OfferPage, query=s.OfferQuery),
    _e("GET", "/v1/offers/{offer_id}", offers.get, "offers:read", "Get an offer", s.OfferView),
    _e("PATCH", "/v1/offers/{offer_id}", offers.update, "offers:write",
       "Update an offer; pause or activate with {\"status\": ...}", Offer, body=s.OfferPatch),
    _e("PUT", "/v1/offers/{offer_id}/affiliates/{affiliate_id}", offers.set_approval, "offers:write",
       "Set an affiliate's approval and overrides on an offer", OfferApproval, body=s.ApprovalPut),
    _e("POST", "/v1/links", links.create, "links:write", "Create a tracking link", s.LinkOut,
       status=201, body=s.LinkCreate),
    _e("GET", "/v1/links", links.list_, "links:read", "List tracking links", s.LinkPage, query=s.LinkQuery),
    _e("POST", "/v1/admin/api-keys", api_keys.create, "api_keys:manage",
       "Create an API key; the key is in this response only", s.ApiKeyCreated, status=201, body=s.ApiKeyCreate),
    _e("GET", "/v1/admin/api-keys", api_keys.list_, "api_keys:read", "List API keys (no secrets)", s.ApiKeyPage,
       query=s.PageQuery),
    _e("GET", "/v1/admin/api-keys/{key_id}", api_keys.get, "api_keys:read", "Get an API key (no secret)", ApiKey),
    _e("POST", "/v1/admin/api-keys/{key_id}/rotate", api_keys.rotate, "api_keys:manage",
       "Rotate a key: a new key (shown once) with the same role and scope; the old one works until grace_until",
       s.ApiKeyCreated, status=201, body=s.ApiKeyRotate),
    _e("POST", "/v1/admin/api-keys/{key_id}/revoke", api_keys.revoke, "api_keys:manage",
       "Revoke a key at once; revoking a revoked key returns it unchanged", ApiKey, body=s.ApiKeyRevoke),
    _e("GET", "/v1/audit-log", audit_log.list_, "audit:read",
       "The organization's audit log, newest first", s.AuditLogPage, query=s.AuditLogQuery),
    _e("GET", "/v1/organization", organization.get, "organization:read",
       "The caller's organization and its data settings", s.OrganizationOut),
    _e("PATCH", "/v1/organization", organization.update, "organization:manage",
       "Change data settings: IP truncation (republishes the links) and retention", s.OrganizationOut,
       body=s.OrganizationPatch),
    _e("POST", "/v1/privacy/export", privacy.export, "privacy:manage",
       "Everything stored about one data subject (exactly one selector)", SubjectExport, body=s.PrivacySubjectIn),
    _e("POST", "/v1/privacy/erase", privacy.erase, "privacy:manage",
       "Scrub a data subject's personal fields; rows and counts stay", SubjectErasure, body=s.PrivacySubjectIn),
    _e("GET", "/v1/conversions", conversions.list_, "conversions:read",
       "List conversions, newest first (advertiser and affiliate keys: their own, without the other side's money)",
       s.ConversionPage, query=s.ConversionQuery),
    _e("GET", "/v1/conversions/{conversion_id}", conversions.get, "conversions:read",
       "Get a conversion with its status history", s.ConversionDetail),
    _e("POST", "/v1/conversions/{conversion_id}/status", conversions.change_status, "conversions:write",
       "Change a conversion's status by hand: approve or reject a pending one, reverse an approved one"
       " (409 invalid_transition otherwise)", s.ConversionDetail, body=s.ConversionStatusChange),
    _e("GET", "/v1/clicks", clicks.list_, "clicks:read",
       "List clicks, newest first, in a window of at most 31 days (default: the last 24 hours); advertiser and"
       " affiliate keys: their own, without the visitor's address and user agent", s.ClickPage, query=s.ClickQuery),
    _e("GET", "/v1/exports/{kind}.{format}", exports.stream, "exports:run",
       "Stream an export: kind clicks|conversions|stats, format csv|jsonl, with the filters of the kind's list;"
       " scoped and shaped like it", None),
    _e("POST", "/v1/exports", exports.create, "exports:run",
       "Queue a background export {kind, format, filters}; follow it at /v1/exports/{id}", s.ExportJobOut,
       status=202, body=ExportRequest),
    _e("GET", "/v1/exports/{export_id}", exports.get, "exports:run", "A background export's progress", s.ExportJobOut),
    _e("GET", "/v1/exports/{export_id}/download", exports.download, "exports:run",
       "A finished background export's file (409 not_ready before it is done)", None),
    _e("GET", "/v1/stats", stats.get, "stats:read",
       "Clicks, unique clicks, conversions by status and money per currency from the rollups: a range of local"
       " days (or 15-minute-aligned datetimes) in any IANA zone, grouped by at most one of hour|day|week|month and"
       " any of offer, advertiser, affiliate, goal, country, device, sub1, filtered, sorted and paged (advertiser"
       " and affiliate keys: their own traffic, without the other side's money)", s.StatsPage, query=StatsRequest),
    _e("GET", "/v1/usage", usage.get, "usage:read",
       "The plan, this month's tracked events (and overage) and active offers against its limits, and the last"
       " 12 months", s.UsageReport),
    _e("POST", "/v1/webhooks", webhooks.create, "webhooks:write",
       "Create a webhook: signed JSON POSTs of the events chosen (default: all) to a URL that passes the SSRF guard"
       " now; the organization's own, or an affiliate's (an affiliate key: its own); its signing secret is in this"
       " response only", ds.WebhookCreated, status=201, body=ds.WebhookCreate),
    _e("GET", "/v1/webhooks", webhooks.list_, "webhooks:read",
       "List webhooks, newest first (an affiliate key: its own); status disabled with disabled_reason failing|gone"
       " means the worker disabled it", ds.EndpointPage, query=s.PageQuery),
    _e("GET", "/v1/webhooks/{webhook_id}", webhooks.get, "webhooks:read", "Get a webhook", DeliveryEndpoint),
    _e("PATCH", "/v1/webhooks/{webhook_id}", webhooks.update, "webhooks:write",
       "Change a webhook's URL, events or description; status disabled holds its pending deliveries, active releases"
       " them and clears its failure streak", DeliveryEndpoint, body=ds.WebhookPatch),
    _e("DELETE", "/v1/webhooks/{webhook_id}", webhooks.delete, "webhooks:write",
       "Delete a webhook with its secrets and deliveries", None, status=204),
    _e("POST", "/v1/webhooks/{webhook_id}/secrets", webhook_secrets.rotate, "webhooks:write",
       "Rotate the signing secret: a new one, in this response only; the ones current until now keep signing beside"
       " it for grace_period_s (24 hours)", ds.WebhookSecretCreated, status=201, body=ds.WebhookSecretRotate),
    _e("GET", "/v1/webhooks/{webhook_id}/secrets", webhook_secrets.list_, "webhooks:read",
       "The secrets requests are signed with now (last four characters, never the secret)", ds.WebhookSecretList),
    _e("POST", "/v1/affiliate-postbacks", affiliate_postbacks.create, "webhooks:write",
       "Create an affiliate's postback: a GET URL template with macros for its conversion events, optionally for one"
       " offer and/or goal (the most specific wins); an affiliate key: its own", DeliveryEndpoint, status=201,
       body=ds.AffiliatePostbackCreate),
    _e("GET", "/v1/affiliate-postbacks", affiliate_postbacks.list_, "webhooks:read",
       "List affiliate postbacks, newest first (an affiliate key: its own)", ds.EndpointPage,
       query=ds.AffiliatePostbackQuery),
    _e("GET", "/v1/affiliate-postbacks/{affiliate_postback_id}", affiliate_postbacks.get, "webhooks:read",
       "Get an affiliate postback", DeliveryEndpoint),
    _e("PATCH", "/v1/affiliate-postbacks/{affiliate_postback_id}", affiliate_postbacks.update, "webhooks:write",
       "Change an affiliate postback; status disabled holds its pending deliveries, active releases them",
       DeliveryEndpoint, body=ds.AffiliatePostbackPatch),
    _e("DELETE", "/v1/affiliate-postbacks/{affiliate_postback_id}", affiliate_postbacks.delete, "webhooks:write",
       "Delete an affiliate postback with its deliveries", None, status=204),
    _e("GET", "/v1/deliveries", deliveries.list_, "webhooks:read",
       "List deliveries to webhooks and affiliate postbacks, newest first (an affiliate key: its own endpoints')",
       ds.DeliveryPage, query=ds.DeliveryQuery),
    _e("POST", "/v1/deliveries/replay", deliveries.replay_dead, "webhooks:write",
       "Replay every dead delivery of an endpoint: pending again, due now, with a new retry budget",
       ds.ReplayedDeliveries, body=ds.DeadDeliveriesReplay),
    _e("GET", "/v1/deliveries/{delivery_id}", deliveries.get, "webhooks:read",
       "Get a delivery: what it sends (a webhook's JSON payload, a postback's macro values) and every attempt",
       ds.DeliveryDetail),
    _e("POST", "/v1/deliveries/{delivery_id}/replay", deliveries.replay, "webhooks:write",
       "Send a delivered or dead delivery again (409 already_pending, or endpoint_disabled)", ds.DeliveryView,
       body=ds.DeliveryReplay),
]
