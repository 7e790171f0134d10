"""The audit of every data query: one ``QueryAudit`` row (written in batches by
``analytics.audit_writer``) and one ``data_query`` log line, saying who asked which endpoint
what, how long it took, how many rows came back and how it ended. Only validated,
normalised parameters are recorded (the canonical form the cache key uses too)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from analytics.access.models import QueryAudit
from analytics.access.principals import client_of, label_of
from analytics.audit_writer import writer
from analytics.canonical import canonical

logger = structlog.get_logger(__name__)


def normalise_params(value: Any) -> Any:
    """Parameters as the audit stores them: the shared canonical form
    (``analytics.canonical``, the same one the cache key uses), then made storable, with
    lists of strings sorted so requests that differ only in list order audit alike."""
    return _storable(canonical(value))


def _storable(value: Any) -> Any:
    if isinstance(value, dict):
        return {_text(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [_storable(v) for v in value]
        return sorted(items) if all(isinstance(i, str) for i in items) else items
    return _text(value) if isinstance(value, str) else value


def _text(value: Any) -> str:
    """Postgres text cannot hold NUL; keep the audit row writable whatever a client sent."""
    return str(value).replace("\x00", "\\u0000")[:2000]


def _outcome(status_code: int) -> str:
    if status_code < 400:
        return "ok"
    if status_code in (401, 403):
        return "denied"
    if status_code == 429:
        return "throttled"
    if status_code < 500:
        return "invalid"
    return "error"


def record_query(
    request: Request,
    *,
    endpoint: str,
    params: dict[str, Any],
    duration_ms: float,
    rows: int,
    status_code: int,
) -> None:
    """``record_query_as`` the request's caller, with its request id."""
    request_id = getattr(request, "request_id", "") or getattr(
        getattr(request, "_request", None), "request_id", ""
    )
    record_query_as(
        getattr(request, "user", None),
        endpoint=endpoint,
        params=params,
        duration_ms=duration_ms,
        rows=rows,
        status_code=status_code,
        request_id=str(request_id),
    )


def record_query_as(
    principal: Any,
    *,
    endpoint: str,
    params: dict[str, Any],
    duration_ms: float,
    rows: int,
    status_code: int,
    request_id: str = "",
) -> None:
    """Audit one data query: a ``QueryAudit`` row and a ``data_query`` log line. Only
    validated, normalised parameters are recorded, never raw query strings. Takes the
    principal, not a request, so background answers (saved-query refreshes, dashboard
    warming) are audited the same way."""
    client = client_of(principal)
    normalised = normalise_params(params)
    label = label_of(principal)
    writer.add(
        QueryAudit(
            user_id=principal.pk
            if principal is not None and principal.is_authenticated and client is None
            else None,
            api_client=client,
            principal=label[:200],
            endpoint=endpoint[:100],
            params=normalised,
            duration_ms=round(float(duration_ms), 3),
            rows_returned=int(rows),
            status_code=int(status_code),
            outcome=_outcome(int(status_code)),
            request_id=str(request_id)[:128],
        )
    )
    logger.info(
        "data_query",
        principal=label,
        endpoint=endpoint,
        params=normalised,
        duration_ms=round(float(duration_ms), 2),
        rows=int(rows),
        status_code=int(status_code),
        outcome=_outcome(int(status_code)),
    )


class AuditedQueryMixin:
    """Optional helper for data views: audits every authenticated request, including the
    ones that end in 400/403/429/5xx. The view sets ``audit_params`` (validated input)
    and ``audit_rows`` once it knows them; ``audit_endpoint`` names the endpoint."""

    audit_endpoint: str = ""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        self._audit_started = time.perf_counter()
        self.audit_params: dict[str, Any] = {}
        self.audit_rows = 0
        super().initial(request, *args, **kwargs)  # type: ignore[misc]

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        self._audit(request, response.status_code)
        return response

    def handle_exception(self, exc: Exception) -> Response:
        """An exception no handler answers becomes Django's 500 without reaching
        ``finalize_response``: audit it as the 500 it is, then let it go on."""
        try:
            return super().handle_exception(exc)  # type: ignore[misc]
        except Exception:
            self._audit(self.request, 500)  # type: ignore[attr-defined]
            raise

    def _audit(self, request: Request, status_code: int) -> None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return
        started = getattr(self, "_audit_started", None)
        record_query(
            request,
            endpoint=self.audit_endpoint or request.path,
            params=getattr(self, "audit_params", {}),
            duration_ms=(time.perf_counter() - started) * 1000 if started else 0.0,
            rows=getattr(self, "audit_rows", 0),
            status_code=status_code,
        )


def audit_cutoff(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(days=settings.AUDIT_RETENTION_DAYS)


def audit_cleanup(now: datetime | None = None) -> int:
    """Delete audit rows older than ``AUDIT_RETENTION_DAYS``; returns how many."""
    deleted, _ = QueryAudit.objects.filter(created_at__lt=audit_cutoff(now)).delete()
    return deleted
