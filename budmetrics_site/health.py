"""Liveness and readiness probes."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse

from budmetrics_site.clickhouse.client import get_client
from budmetrics_site.metrics import metrics_response


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition: HTTP requests and latency by route and status, query
    durations and errors, cache hits and misses (all worker processes under ``make serve``)."""
    return metrics_response()


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_postgres() -> str:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
    return connections["default"].vendor


def _check_clickhouse() -> str:
    client = get_client()
    client.command("SELECT 1")
    return "embedded chDB" if settings.CLICKHOUSE_EMBEDDED else "server"


def _check_redis() -> str:
    if not settings.REDIS_URL:
        return "not configured (local-memory cache)"
    from django_redis import get_redis_connection

    get_redis_connection("default").ping()
    return "redis"


CHECKS: dict[str, Callable[[], str]] = {
    "database": _check_postgres,
    "clickhouse": _check_clickhouse,
    "redis": _check_redis,
}


def readyz(request: HttpRequest) -> JsonResponse:
    """200 when every dependency answers, else 503 naming the failed ones."""
    results: dict[str, dict[str, object]] = {}
    failed = []
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            detail = check()
            results[name] = {"status": "ok", "detail": detail}
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            failed.append(name)
            results[name] = {"status": "error", "detail": str(exc).splitlines()[0][:200]}
        results[name]["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 2)
    if failed:
        return JsonResponse(
            {
                "success": False,
                "error": {
                    "code": "not_ready",
                    "message": f"Not ready: {', '.join(failed)} unavailable.",
                    "details": results,
                },
            },
            status=503,
        )
    return JsonResponse({"success": True, "data": {"status": "ready", "checks": results}})
