"""Request rate per principal (API client, user, or anonymous IP) on the shared cache:
a 429 with ``Retry-After`` past the ``client``/``anon`` rate, and never a 500 when the
cache is down."""

from __future__ import annotations

from typing import Any

import structlog
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from analytics.access.principals import ApiClientPrincipal

logger = structlog.get_logger(__name__)


class ClientRateThrottle(SimpleRateThrottle):
    """One bucket per principal (API client, user, or anonymous IP) on the default cache
    (Redis in production, so all web workers share it). Rates come from
    ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` ``client``/``anon`` at request time."""

    scope = "client"

    def __init__(self) -> None:  # the rate depends on the request; see allow_request
        pass

    def allow_request(self, request: Request, view: Any) -> bool:
        user = getattr(request, "user", None)
        self.scope = "client" if user is not None and user.is_authenticated else "anon"
        self.rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        if not self.rate:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        try:
            return super().allow_request(request, view)
        except Exception as exc:  # noqa: BLE001 - a cache outage fails open, never a 500
            logger.warning("throttle_cache_unavailable", error=str(exc)[:200])
            return True

    def get_cache_key(self, request: Request, view: Any) -> str:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            ident = str(user.pk) if isinstance(user, ApiClientPrincipal) else f"user:{user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
