"""Liveness and readiness probes."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from budmetrics_site.clickhouse import failover


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition: query durations and errors, cache hits and misses."""
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_postgres() -> str:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
    return connections["default"].vendor


class Degraded(Exception):  # noqa: N818 - a state, not an error
    """A dependency that answers only through its fallback: ready, but say so."""


def _check_clickhouse() -> str:
    """The primary; when it fails and a backup is configured, the backup (degraded)."""
    route = failover.route()
    try:
        route.primary().command("SELECT 1")
    except Exception as exc:
        if route.backup is None:
            raise
        primary_error = failover.root_cause(exc)
        try:
            route.backup().command("SELECT 1")
        except Exception as backup_exc:
            raise RuntimeError(
                f"primary: {primary_error}; backup: {_first_line(backup_exc)}"
            ) from backup_exc
        raise Degraded(f"primary unreachable ({primary_error}); the backup answers") from exc
    detail = "embedded chDB" if settings.CLICKHOUSE_EMBEDDED else "server"
    return f"{detail}, backup configured" if route.backup is not None else detail


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [""])[0][:200]


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
    """200 when every dependency answers ("degraded" when one answers only through its
    fallback, e.g. the backup ClickHouse), else 503 naming the failed ones."""
    results: dict[str, dict[str, object]] = {}
    failed = []
    degraded = []
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            detail = check()
            results[name] = {"status": "ok", "detail": detail}
        except Degraded as exc:
            degraded.append(name)
            results[name] = {"status": "degraded", "detail": str(exc)}
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
    status = "degraded" if degraded else "ready"
    return JsonResponse({"success": True, "data": {"status": status, "checks": results}})
