"""Liveness and readiness probes."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse

from budmetrics_site.clickhouse import failover
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


def _publication_report() -> dict[str, object]:
    """The blocking-rule outbox (``blocking.publishing``): ``degraded`` once a change has
    waited longer than ``BLOCKING_PUBLICATION_MAX_LAG`` seconds to reach the gateway's
    Redis. A backlog does not make this instance unready (it serves analytics as well as
    ever, and taking it out of rotation would not deliver anything): it is reported, with
    ``status: degraded``, for alerting."""
    from blocking import publishing

    try:
        report: dict[str, object] = dict(publishing.backlog())
    except Exception as exc:  # noqa: BLE001 - the database check names the real failure
        return {"status": "unknown", "detail": str(exc).splitlines()[0][:200]}
    oldest = report["oldest_pending_seconds"]
    if not report["configured"]:
        report["status"] = "not_configured"
    elif isinstance(oldest, float | int) and oldest > settings.BLOCKING_PUBLICATION_MAX_LAG:
        report["status"] = "degraded"
    else:
        report["status"] = "ok"
    return report


def readyz(request: HttpRequest) -> JsonResponse:
    """200 when every dependency answers, else 503 naming the failed ones; ``degraded``
    (still 200) when one answers only through its fallback (the backup ClickHouse) or
    blocking-rule changes wait to be published."""
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
    publication = _publication_report()
    if failed:
        return JsonResponse(
            {
                "success": False,
                "error": {
                    "code": "not_ready",
                    "message": f"Not ready: {', '.join(failed)} unavailable.",
                    "details": {**results, "blocking_rules_publication": publication},
                },
            },
            status=503,
        )
    overall = "degraded" if degraded or publication["status"] == "degraded" else "ready"
    return JsonResponse(
        {
            "success": True,
            "data": {
                "status": overall,
                "checks": results,
                "blocking_rules_publication": publication,
            },
        }
    )
