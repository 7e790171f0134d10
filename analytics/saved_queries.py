"""Saved queries: a named request to one data endpoint, with a relative or absolute time
window, that dashboards run by id and Celery keeps warm in the cache.

A saved query is answered by the endpoint registry (``analytics.endpoints.answer``) for the
runner's principal, so validation, project scope, audit and caching are exactly the
endpoint's, with no request in between.
Relative windows end on a boundary of ``max(60 s, refresh_interval)``, so every run inside
one interval asks the same question and shares one cache entry with the refresh.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from rest_framework.exceptions import ValidationError as DRFValidationError

from analytics import cache as response_cache
from analytics.access.models import ApiClient
from analytics.access.principals import ApiClientPrincipal
from analytics.endpoints import ENDPOINTS, CachePolicy, answer_audited, page_url_for, validate
from budmetrics_site.constraints import validate_constraints_readably
from budmetrics_site.errors import _flatten

WINDOWS: dict[str, timedelta | None] = {
    "last_1h": timedelta(hours=1),
    "last_24h": timedelta(hours=24),
    "last_7d": timedelta(days=7),
    "last_30d": timedelta(days=30),
    "absolute": None,
}
MIN_REFRESH_SECONDS = 60


# What to change, in the admin form's terms, when a SavedQuery constraint is violated.
SAVED_QUERY_MESSAGES = {
    "saved_query_one_owner": "Fill in exactly one of “Owner” (a user) and “Owner client” "
    "(an API client), to whom the saved query belongs: not both, and not neither.",
    "saved_query_unique_user_name": "This owner already has a saved query with this name: "
    "change “Name” (or “Owner”).",
    "saved_query_unique_client_name": "This API client already has a saved query with this "
    "name: change “Name” (or “Owner client”).",
}


class SavedQuery(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="saved_queries",
    )
    owner_client = models.ForeignKey(
        ApiClient, null=True, blank=True, on_delete=models.CASCADE, related_name="saved_queries"
    )
    endpoint = models.CharField(max_length=40, choices=[(e, e) for e in ENDPOINTS])
    params = models.JSONField(
        default=dict,
        blank=True,
        help_text="The endpoint's request parameters, without start_time/end_time for a "
        "relative window.",
    )
    time_window = models.CharField(
        max_length=10, choices=[(w, w) for w in WINDOWS], default="last_24h"
    )
    refresh_interval = models.PositiveIntegerField(
        default=0, help_text="Seconds between background refreshes; 0 = never (min 60)."
    )
    is_shared = models.BooleanField(default=False, help_text="Anyone authenticated may run it.")
    last_refreshed_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_duration_ms = models.FloatField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "analytics"
        verbose_name = "saved query"
        verbose_name_plural = "saved queries"
        ordering = ("name",)
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="saved_query_unique_user_name"),
            models.UniqueConstraint(
                fields=["owner_client", "name"], name="saved_query_unique_client_name"
            ),
            models.CheckConstraint(
                condition=models.Q(owner__isnull=False, owner_client__isnull=True)
                | models.Q(owner__isnull=True, owner_client__isnull=False),
                name="saved_query_one_owner",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.endpoint})"

    def validate_constraints(self, exclude: Any = None) -> None:
        validate_constraints_readably(self, exclude, SAVED_QUERY_MESSAGES)

    def clean(self) -> None:
        """An invalid saved query cannot be stored: its params must pass the endpoint's own
        serializer for the window it will run with."""
        errors: dict[str, list[str]] = {}
        if self.endpoint not in ENDPOINTS:
            errors["endpoint"] = [f"Must be one of {', '.join(ENDPOINTS)}."]
        if self.refresh_interval and self.refresh_interval < MIN_REFRESH_SECONDS:
            errors["refresh_interval"] = [f"0 or at least {MIN_REFRESH_SECONDS} seconds."]
        if not isinstance(self.params, dict):
            errors["params"] = ["Must be a JSON object."]
        elif self.endpoint in ENDPOINTS:
            has_times = {"start_time", "end_time"} & set(self.params)
            if self.time_window == "absolute" and len(has_times) != 2:
                errors["params"] = ["An absolute window needs start_time and end_time."]
            elif self.time_window != "absolute" and has_times:
                errors["params"] = [
                    f"A {self.time_window} window sets the times itself; "
                    "remove start_time/end_time."
                ]
            else:
                problems = validate_params(self.endpoint, self.resolved_params())
                if problems:
                    errors["params"] = [
                        f"{field}: {' '.join(msgs)}" for field, msgs in problems.items()
                    ]
        if errors:
            raise ValidationError(errors)

    def window_granularity(self) -> int:
        return max(MIN_REFRESH_SECONDS, self.refresh_interval or 0)

    def resolved_params(self, now: float | None = None) -> dict[str, Any]:
        """Params with the window's absolute times filled in."""
        span = WINDOWS.get(self.time_window)
        params = dict(self.params or {})
        if span is None:
            return params
        current = now if now is not None else response_cache.clock()
        step = self.window_granularity()
        end = datetime.fromtimestamp(math.floor(current / step) * step, tz=UTC)
        params["start_time"] = (end - span).isoformat()
        params["end_time"] = end.isoformat()
        return params

    def cache_ttl(self) -> int:
        """Long enough to reach the next refresh when one is scheduled."""
        if self.refresh_interval:
            return self.window_granularity() + MIN_REFRESH_SECONDS
        return settings.CACHE_TTL

    def can_run(self, user: Any) -> bool:
        if self.is_shared:
            return True
        if isinstance(user, ApiClientPrincipal):
            return self.owner_client_id == user.api_client.pk
        return self.owner_id is not None and self.owner_id == getattr(user, "pk", None)

    def owner_principal(self) -> Any:
        return ApiClientPrincipal(self.owner_client) if self.owner_client_id else self.owner


def validate_params(endpoint: str, params: dict[str, Any]) -> dict[str, list[str]]:
    """The endpoint serializer's errors for these params ({} when valid)."""
    try:
        validate(ENDPOINTS[endpoint], params)
    except DRFValidationError as exc:
        return _flatten(exc.detail)
    return {}


@dataclass(frozen=True)
class RunOutcome:
    """A saved query's answer. Failures raise (a view's exception handler renders them,
    a Celery task sees them and retries dependency errors), so ``status_code`` is 200."""

    status_code: int
    content: bytes  # the endpoint's JSON body, exactly as the endpoint sends it
    cache_status: str
    duration_ms: float
    age_seconds: int = 0
    rows: int = 0

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.content or b"{}")


def saved_query_run(
    saved: SavedQuery,
    user: Any,
    *,
    refresh: bool = False,
    now: float | None = None,
    origin: str = "",
    request_id: str = "",
) -> RunOutcome:
    """Answer a saved query as ``user`` would get it from the endpoint itself (their
    project scope; audited as a query of the endpoint). ``refresh`` recomputes even when
    cached; ``origin`` (``scheme://host``) starts any page links; errors raise."""
    endpoint = ENDPOINTS[saved.endpoint]
    params = saved.resolved_params(now)
    started = time.perf_counter()
    result = answer_audited(
        endpoint,
        params,
        user,
        CachePolicy(refresh=refresh, ttl=saved.cache_ttl()),
        request_id=request_id,
        page_url=page_url_for(endpoint, params, origin),
    )
    return RunOutcome(
        200,
        result.payload,
        result.cache.status,
        (time.perf_counter() - started) * 1000,
        result.cache.age_seconds,
        result.rows,
    )


def run_response(request: Any, outcome: RunOutcome) -> Any:
    """A run's answer for the caller: the endpoint's bytes as they are (a large cached
    body is neither parsed nor rendered again), with its cache headers."""
    info = response_cache.CacheInfo(outcome.cache_status, outcome.age_seconds)
    return response_cache.json_response(request, outcome.content, info)


def origin_of(request: Any) -> str:
    """``scheme://host`` of the caller's request, for page links in a run's answer."""
    return request.build_absolute_uri("/").rstrip("/")


def request_id_of(request: Any) -> str:
    """The request id the middleware gave this request, for the run's audit row."""
    return str(getattr(request, "request_id", "") or "")


def saved_query_refresh(saved: SavedQuery, *, now: float | None = None) -> RunOutcome:
    """Recompute and re-cache as the owner; record when and how long. Errors raise."""
    outcome = saved_query_run(saved, saved.owner_principal(), refresh=True, now=now)
    SavedQuery.objects.filter(pk=saved.pk).update(
        last_refreshed_at=timezone.now(), last_duration_ms=round(outcome.duration_ms, 2)
    )
    return outcome


def saved_queries_due(now: datetime | None = None) -> list[SavedQuery]:
    """Saved queries with a refresh interval whose last refresh is older than it."""
    current = now or timezone.now()
    due = []
    for saved in SavedQuery.objects.filter(refresh_interval__gt=0).select_related(
        "owner", "owner_client"
    ):
        last = saved.last_refreshed_at
        if last is None or (current - last).total_seconds() >= saved.refresh_interval - 5:
            due.append(saved)
    return due
