"""Background exports: an ``ExportJob`` row (Postgres) per ``POST /gateway/exports``, run by
the Celery task ``analytics.run_export``: the request-log query streamed into a file in
``EXPORT_DIR``, progress saved as it goes, then a signed download link that is valid for
``EXPORT_LINK_SECONDS``; ``analytics.cleanup_exports`` deletes files after
``EXPORT_RETENTION_HOURS``.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from django.conf import settings
from django.core import signing
from django.db import models

from analytics.access.audit import record_query_as
from analytics.access.models import ApiClient
from analytics.access.principals import ApiClientPrincipal
from analytics.access.scope import scope_for
from analytics.requests_log.cursor import caller_of
from analytics.requests_log.export import capped_lines, request_log_cells
from analytics.requests_log.queries import (
    RequestLogQuery,
    iter_values,
    request_log_query,
    stream_rows,
)
from budmetrics_site.errors import to_api_exception

logger = structlog.get_logger(__name__)

# The clock, in one place so tests can travel in time instead of sleeping.
clock: Callable[[], float] = time.time
# Progress is saved after every this many rows (and at the end).
PROGRESS_ROWS = 50_000
LINK_SALT = "budmetrics.exports.download.v1"
EXPORT_STATUSES = ("queued", "running", "done", "failed", "expired")


class ExportJob(models.Model):
    QUEUED, RUNNING, DONE, FAILED, EXPIRED = "queued", "running", "done", "failed", "expired"
    STATUSES = EXPORT_STATUSES

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="export_jobs",
    )
    owner_client = models.ForeignKey(
        ApiClient, null=True, blank=True, on_delete=models.CASCADE, related_name="export_jobs"
    )
    format = models.CharField(max_length=10, choices=[("csv", "csv"), ("ndjson", "ndjson")])
    params = models.JSONField(default=dict, help_text="The GET /gateway/requests parameters.")
    status = models.CharField(
        max_length=10, choices=[(s, s) for s in STATUSES], default=QUEUED, db_index=True
    )
    rows_total = models.BigIntegerField(null=True, blank=True)
    rows_written = models.BigIntegerField(default=0)
    capped = models.BooleanField(default=False)
    file_name = models.CharField(max_length=200, blank=True, default="")
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        app_label = "analytics"
        ordering = ("-created_at",)
        constraints = [
            models.CheckConstraint(
                condition=models.Q(owner__isnull=False, owner_client__isnull=True)
                | models.Q(owner__isnull=True, owner_client__isnull=False),
                name="export_job_one_owner",
            ),
        ]

    def __str__(self) -> str:
        return f"export {self.id} ({self.format}, {self.status})"

    def owner_principal(self) -> Any:
        return ApiClientPrincipal(self.owner_client) if self.owner_client_id else self.owner

    @property
    def path(self) -> Path:
        return Path(settings.EXPORT_DIR) / f"{self.id}.{self.format}"

    @property
    def progress(self) -> float | None:
        if self.status == self.DONE:
            return 1.0
        if not self.rows_total:
            return None if self.rows_total is None else 0.0
        return min(self.rows_written / self.rows_total, 1.0)


def now() -> datetime:
    return datetime.fromtimestamp(clock(), tz=UTC)


def owned_by(principal: Any) -> models.Q:
    """The jobs a principal may see: its own."""
    if isinstance(principal, ApiClientPrincipal):
        return models.Q(owner_client=principal.api_client)
    return models.Q(owner=principal)


def download_token(job: ExportJob) -> str:
    """A download token for ``job`` valid ``EXPORT_LINK_SECONDS`` from now."""
    expires = int(clock()) + settings.EXPORT_LINK_SECONDS
    return signing.dumps({"j": str(job.id), "e": expires}, salt=LINK_SALT)


def token_valid(token: str, job: ExportJob) -> bool:
    try:
        payload = signing.loads(token, salt=LINK_SALT)
    except signing.BadSignature:
        return False
    return payload.get("j") == str(job.id) and int(payload.get("e", 0)) > clock()


def write_export(job: ExportJob, query: RequestLogQuery, cap: int, *, trailer: bool = True) -> None:
    """Stream the query into the job's file (``.part`` until complete), saving progress."""
    stream = stream_rows(query, cap)  # plans its slices with a count per minute
    job.rows_total = min(stream.total, cap)
    job.save(update_fields=["rows_total"])
    Path(settings.EXPORT_DIR).mkdir(parents=True, exist_ok=True)
    partial = job.path.with_suffix(job.path.suffix + ".part")
    fields = list(query.fields)

    def counted(values: Iterator[list[Any]]) -> Iterator[list[Any]]:
        for number, row in enumerate(values, start=1):
            if number % PROGRESS_ROWS == 0:
                ExportJob.objects.filter(pk=job.pk).update(rows_written=number)
            yield row

    try:
        lines, progress = capped_lines(
            job.format,
            fields,
            counted(iter_values(stream, fields)),
            cap,
            trailer=trailer,
            cells=request_log_cells(fields),
        )
        with partial.open("wb") as out:
            for chunk in lines:
                out.write(chunk)
    finally:
        stream.close()
    job.rows_written, job.capped = progress()
    os.replace(partial, job.path)


def run_job(job: ExportJob) -> ExportJob:
    """Run one queued export as its owner (their scope now, not when it was asked)."""
    from analytics.requests_log.serializers import RequestLogQuerySerializer

    principal = job.owner_principal()
    started = time.perf_counter()
    job.status, job.started_at = ExportJob.RUNNING, now()
    job.save(update_fields=["status", "started_at"])
    status = 200
    try:
        serializer = RequestLogQuerySerializer(
            data=dict(job.params), context={"caller": caller_of(principal), "export": job.format}
        )
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        query = request_log_query(data, scope_for(principal, data["project_ids"]))
        write_export(job, query, data["limit"], trailer="limit" not in job.params)
        job.status, job.file_name = ExportJob.DONE, job.path.name
        job.finished_at = now()
        job.expires_at = job.finished_at + timedelta(hours=settings.EXPORT_RETENTION_HOURS)
        job.save()
        return job
    except Exception as exc:
        mapped = to_api_exception(exc)
        status = getattr(mapped, "status_code", 500)
        job.status, job.error, job.finished_at = ExportJob.FAILED, str(exc)[:2000], now()
        job.save(update_fields=["status", "error", "finished_at"])
        logger.warning("export_failed", job=str(job.pk), error=str(exc)[:300])
        raise
    finally:
        record_query_as(
            principal,
            endpoint="exports",
            params={**job.params, "format": job.format, "job": str(job.pk)},
            duration_ms=(time.perf_counter() - started) * 1000,
            rows=job.rows_written,
            status_code=status,
        )


def cleanup_exports() -> int:
    """Delete the files of exports past ``expires_at`` (and abandoned partial files);
    their jobs stay, marked expired. Returns how many were expired."""
    current = now()
    expired = 0
    for job in ExportJob.objects.filter(status=ExportJob.DONE, expires_at__lte=current):
        job.path.unlink(missing_ok=True)
        job.status = ExportJob.EXPIRED
        job.save(update_fields=["status"])
        expired += 1
    stale = current - timedelta(hours=settings.EXPORT_RETENTION_HOURS)
    for job in ExportJob.objects.filter(status=ExportJob.FAILED, created_at__lte=stale):
        job.path.with_suffix(job.path.suffix + ".part").unlink(missing_ok=True)
    return expired
