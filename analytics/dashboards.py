"""Default dashboard views: the few views a project's dashboard opens on, answered per
project and kept warm by Celery so that opening a dashboard is a cache hit.

A view is a ``SavedQuery`` that is never stored: its endpoint, params and relative window
plus ``project_ids=[project]``. Running it goes through ``saved_query_run`` (the endpoint
registry's ``answer``), so validation, project scope, audit and caching are exactly the
endpoint's, and its window ends on a multiple of ``DASHBOARD_REFRESH_INTERVAL`` so every
read inside one interval asks the same question. The warmer runs as the
``budmetrics-dashboard-warmer`` API client (all projects; inactive, so no key
authenticates as it). The cache key holds only the project scope, not
the caller, so any reader allowed on the project shares the warmed entry.

"Active" projects are those with traffic in the last ``DASHBOARD_ACTIVE_HOURS`` hours (at
most ``DASHBOARD_MAX_PROJECTS`` of them); each (project, view) is recomputed once per
interval, just after its window moves on.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.core.cache import cache

from analytics import cache as response_cache
from analytics.access.models import ApiClient
from analytics.access.principals import ApiClientPrincipal
from analytics.query.system import active_project_ids
from analytics.saved_queries import RunOutcome, SavedQuery, saved_query_run
from budmetrics_site.errors import ServiceUnavailable

logger = structlog.get_logger(__name__)

WARMER_NAME = "budmetrics-dashboard-warmer"


@dataclass(frozen=True)
class DashboardView:
    endpoint: str  # a key of saved_queries.ENDPOINTS
    window: str  # a key of saved_queries.WINDOWS, relative
    description: str
    params: dict[str, Any] = field(default_factory=dict)


VIEWS: dict[str, DashboardView] = {
    "overview": DashboardView(
        "analytics",
        "last_24h",
        "Requests, errors, latency, tokens and cost over the last 24 hours, hourly.",
        {
            "time_bucket": "1h",
            "metrics": [
                "total_requests",
                "error_rate",
                "avg_response_time",
                "p95_response_time",
                "total_tokens",
                "total_cost",
            ],
        },
    ),
    "geography": DashboardView(
        "geographical-stats",
        "last_7d",
        "Top 10 countries, regions and cities of the last 7 days.",
        {"limit": 10},
    ),
    "top-routes": DashboardView(
        "top-routes", "last_7d", "The 10 busiest routes of the last 7 days.", {"limit": 10}
    ),
    "blocking": DashboardView(
        "blocking-stats",
        "last_24h",
        "What was blocked in the last 24 hours, by IP, rule and reason.",
        {"limit": 10},
    ),
    # One analytics request answers the LLM view: every number of it is a per-model
    # metric over the same rows and hours, so a single GROUPING SETS query gives the
    # hourly series per model and the 24-hour figures per model and overall. Finish
    # reasons appear as the two rates that call for action (length cut-offs, content
    # filtering) rather than a second request grouped by finish_reason.
    "llm": DashboardView(
        "analytics",
        "last_24h",
        "LLM serving over the last 24 hours, hourly, by model (top 10 + other): p95 time "
        "to first token, output tokens/s, fallback and cache-hit rates, truncation and "
        "content-filter rates.",
        {
            "time_bucket": "1h",
            "metrics": [
                "total_requests",
                "p95_ttft",
                "output_tokens_per_second",
                "fallback_rate",
                "rescued_requests",
                "cache_hit_rate",
                "truncation_rate",
                "content_filter_rate",
            ],
            "group_by": ["model_name"],
            "top_n": 10,
            "order_by": "total_requests",
            "include_other": True,
        },
    ),
}


def view_query(name: str, project_id: uuid.UUID) -> SavedQuery:
    """The view as an unsaved saved query scoped to one project."""
    view = VIEWS[name]
    return SavedQuery(
        name=f"dashboard:{name}",
        endpoint=view.endpoint,
        params={**view.params, "project_ids": [str(project_id)]},
        time_window=view.window,
        refresh_interval=settings.DASHBOARD_REFRESH_INTERVAL,
    )


def run_view(
    name: str,
    project_id: uuid.UUID,
    user: Any,
    *,
    refresh: bool = False,
    now: float | None = None,
    origin: str = "",
    request_id: str = "",
) -> RunOutcome:
    """Answer one dashboard view as ``user`` would get it from its endpoint; errors raise."""
    return saved_query_run(
        view_query(name, project_id),
        user,
        refresh=refresh,
        now=now,
        origin=origin,
        request_id=request_id,
    )


def warmer_principal() -> ApiClientPrincipal:
    client = ApiClient.objects.filter(name=WARMER_NAME).first()
    if client is None:
        client = ApiClient(name=WARMER_NAME, all_projects=True, is_active=False)
        client.set_new_key()  # never shown: the client is inactive and cannot log in
        client.save()
    return ApiClientPrincipal(client)


def active_projects(now: float) -> list[uuid.UUID]:
    """Projects with traffic in the last ``DASHBOARD_ACTIVE_HOURS`` hours."""
    until = datetime.fromtimestamp(now, tz=UTC)
    since = until - timedelta(hours=settings.DASHBOARD_ACTIVE_HOURS)
    return active_project_ids(since, until, settings.DASHBOARD_MAX_PROJECTS)


def _window_end(now: float) -> int:
    step = max(60, settings.DASHBOARD_REFRESH_INTERVAL)
    return math.floor(now / step) * step


def _marker_key(name: str, project_id: uuid.UUID) -> str:
    return f"dashboard-warmed:{project_id}:{name}"


def warm_dashboards(now: float | None = None) -> list[tuple[uuid.UUID, str]]:
    """Recompute every (active project, view) whose window has moved on since it was last
    warmed; returns what was warmed. Idempotent within one interval.

    Errors reach the caller (the Celery task retries dependency errors): ClickHouse being
    unavailable stops the round at once; any other failure (one view timing out, say) is
    logged, the other views are still warmed, and the first such error is raised at the
    end, so one slow view neither starves the rest nor goes unnoticed."""
    if not settings.DASHBOARD_REFRESH_INTERVAL or not settings.CACHE_ENABLED:
        return []
    current = now if now is not None else response_cache.clock()
    window_end = _window_end(current)
    pending = [(p, name) for p in active_projects(current) for name in VIEWS]
    if not pending:
        return []
    markers = cache.get_many([_marker_key(name, p) for p, name in pending])
    principal = warmer_principal()
    warmed = []
    failure: Exception | None = None
    for project_id, name in pending:
        key = _marker_key(name, project_id)
        if markers.get(key) == window_end:
            continue
        if not cache.add(f"lock:{key}", "1", timeout=settings.CELERY_TASK_TIME_LIMIT):
            continue  # another worker is warming it right now
        try:
            run_view(name, project_id, principal, refresh=True, now=current)
        except ServiceUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - raised after the other views are warmed
            logger.warning(
                "dashboard_warm_failed",
                project_id=str(project_id),
                view=name,
                error=type(exc).__name__,
            )
            failure = failure or exc
            continue
        finally:
            cache.delete(f"lock:{key}")
        cache.set(key, window_end, timeout=2 * max(60, settings.DASHBOARD_REFRESH_INTERVAL))
        warmed.append((project_id, name))
    logger.info("dashboards_warmed", count=len(warmed), window_end=window_end)
    if failure is not None:
        raise failure
    return warmed
