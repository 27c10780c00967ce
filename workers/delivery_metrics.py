"""The delivery worker's Prometheus metrics (names operators already alert on)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DELIVERIES = Counter(
    "afftok_deliveries_total", "Outbound delivery attempts by kind (postback|webhook) and verdict.",
    ["kind", "verdict"])
WEBHOOK_FAILURES = Counter(
    "afftok_webhook_failures_total",
    "Failed outbound attempts (postbacks and webhooks) by kind and reason: http_4xx, http_5xx, timeout, connect,"
    " tls, protocol, unsafe_url.", ["kind", "reason"])
DELIVERY_LATENCY = Histogram(
    "afftok_delivery_latency_seconds", "From the event's creation to the receiver's 2xx.", ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600, 6 * 3600, 24 * 3600, 72 * 3600))
REQUEST_SECONDS = Histogram(
    "afftok_delivery_request_seconds", "One outbound request, connect to response.", ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
PAUSED = Gauge("afftok_deliveries_paused", "1 while the operator's kill switch holds outbound delivery.")
ENDPOINTS_DISABLED = Counter(
    "afftok_endpoints_disabled_total", "Endpoints disabled automatically (failing too long, or 410 Gone).", ["kind"])


def failure_label(status_code: int | None, error: str | None) -> str:
    if status_code is not None:
        return f"http_{status_code // 100}xx"
    return error or "unknown"
