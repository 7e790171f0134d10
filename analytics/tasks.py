"""Celery tasks. They only call services; each is idempotent, time-limited, retried with
back-off when a dependency is down, and a Redis lock keeps two refreshes of one saved query
from running at once."""

from __future__ import annotations

from typing import Any

import structlog
from celery import shared_task
from django.core.cache import cache
from rest_framework.exceptions import APIException

from analytics import dashboards
from analytics.access.audit import audit_cleanup
from analytics.requests_log import jobs
from analytics.requests_log.jobs import ExportJob, run_job
from analytics.saved_queries import SavedQuery, saved_queries_due, saved_query_refresh
from budmetrics_site.errors import QueryTimeout, ServiceUnavailable, to_api_exception

logger = structlog.get_logger(__name__)

LOCK_SECONDS = 300
# A dependency that is down (ClickHouse, Postgres) or slow: retry with back-off.
RETRY_ON_DEPENDENCY_ERRORS: dict[str, Any] = {
    "autoretry_for": (ServiceUnavailable, QueryTimeout),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "max_retries": 5,
}


def lock_key(saved_query_id: Any) -> str:
    return f"lock:saved-query-refresh:{saved_query_id}"


@shared_task(
    name="analytics.refresh_saved_query",
    **RETRY_ON_DEPENDENCY_ERRORS,
)
def refresh_saved_query(saved_query_id: str) -> str:
    """Recompute one saved query into the cache. Returns "refreshed", "locked" (another
    refresh holds the lock), "missing", or the status of an answer the endpoint refuses
    (a query its owner may no longer read, say: retrying would not help). Dependency
    errors (ClickHouse down, a query timeout) raise, so the task is retried."""
    key = lock_key(saved_query_id)
    if not cache.add(key, "1", timeout=LOCK_SECONDS):  # SET NX on Redis: atomic
        logger.info("saved_query_refresh_skipped", saved_query=saved_query_id, reason="locked")
        return "locked"
    try:
        saved = (
            SavedQuery.objects.select_related("owner", "owner_client")
            .filter(pk=saved_query_id)
            .first()
        )
        if saved is None:
            return "missing"
        try:
            outcome = saved_query_refresh(saved)
        except Exception as exc:
            mapped = to_api_exception(exc)  # domain refusals (422, 400) have a status too
            if not isinstance(mapped, APIException) or mapped.status_code >= 500:
                raise
            logger.warning(
                "saved_query_refresh_refused", saved_query=saved_query_id, status=mapped.status_code
            )
            return str(mapped.status_code)
        logger.info(
            "saved_query_refreshed",
            saved_query=saved_query_id,
            duration_ms=round(outcome.duration_ms, 2),
        )
        return "refreshed"
    finally:
        cache.delete(key)


@shared_task(name="analytics.refresh_due_saved_queries")
def refresh_due_saved_queries() -> int:
    """Queue a refresh for each saved query whose interval has passed."""
    due = saved_queries_due()
    for saved in due:
        refresh_saved_query.delay(str(saved.pk))
    return len(due)


@shared_task(
    name="analytics.warm_dashboards",
    **RETRY_ON_DEPENDENCY_ERRORS,
)
def warm_dashboards() -> int:
    """Recompute the default dashboard views of active projects whose window moved on."""
    return len(dashboards.warm_dashboards())


@shared_task(name="analytics.run_export")
def run_export(job_id: str) -> str:
    """Write one background export (``analytics.requests_log.jobs``). Returns the job's
    final status; a failure is recorded on the job (its owner reads it there), not retried:
    the file would start over anyway, and the owner may ask again."""
    job = ExportJob.objects.filter(pk=job_id, status=ExportJob.QUEUED).first()
    if job is None:
        return "missing"
    try:
        return run_job(job).status
    except Exception:  # noqa: BLE001 - recorded on the job and logged by run_job
        return ExportJob.FAILED


@shared_task(name="analytics.cleanup_exports")
def cleanup_exports() -> int:
    """Delete export files past their retention (``EXPORT_RETENTION_HOURS``)."""
    return jobs.cleanup_exports()


@shared_task(name="analytics.cleanup_audit")
def cleanup_audit() -> int:
    return audit_cleanup()
