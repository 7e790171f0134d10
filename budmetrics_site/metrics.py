"""HTTP request metrics, and the Prometheus exposition that stays correct under several
worker processes.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``make serve`` sets it; the directory is emptied
when the server starts and a dead worker's live gauges are dropped, see
``budmetrics_site/gunicorn_conf.py``) every process writes its samples to files there and
``/metrics`` adds them up, so a scrape that lands on any worker sees the totals of all.
Without it (``make run``, tests) the one process's own registry is served.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

HTTP_REQUESTS = Counter(
    "gateway_analytics_http_requests_total",
    "HTTP requests answered, by method, route (the URL pattern, not the raw path) and status",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "gateway_analytics_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, route and status",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"  # any path no URL pattern matched (one label, not one per path)


def route_of(request: HttpRequest) -> str:
    """The matched URL pattern (``gateway/dashboards/<str:view>``): bounded label values."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return UNMATCHED
    return "/" + match.route if match.route is not None else UNMATCHED


class HttpMetricsMiddleware:
    """Counts and times every request; outermost, so throttled and failed requests count."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        status = "500"
        try:
            response = self.get_response(request)
            status = str(response.status_code)
            return response
        finally:
            method = request.method if request.method in _METHODS else "other"
            labels = (method, route_of(request), status)
            HTTP_REQUESTS.labels(*labels).inc()
            HTTP_LATENCY.labels(*labels).observe(time.perf_counter() - started)


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()


def exposition() -> bytes:
    """Every metric, summed over the server's processes in multiprocess mode."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def metrics_response() -> HttpResponse:
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
