"""Failed authentication, throttled per client address (``AUTH_FAILURE_RATE``).

Every 401 an address gets (a wrong, revoked, malformed or missing key, an expired session)
counts against it on the shared cache. Past the rate, every request from that address is
answered 429 with ``Retry-After`` until the window ends, *before* any key is looked at:
a good key from a throttled address waits too, or guessing keys would still tell a right
guess (200) from a wrong one (429). The probes (``/healthz``, ``/readyz``, ``/metrics``)
are never throttled. A cache outage fails open (logged), as the other throttles do.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from analytics.access.throttling import Window, client_ip

logger = structlog.get_logger(__name__)

PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def _window(request: HttpRequest) -> Window | None:
    rate = getattr(settings, "AUTH_FAILURE_RATE", None)
    if not rate:
        return None
    return Window(f"authfail:ip:{client_ip(request)}", rate)


class FailedAuthThrottleMiddleware:
    """429 for an address past its failed-authentication rate; counts each 401."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path in PROBE_PATHS:
            return self.get_response(request)
        window = _window(request)
        if window is not None:
            try:
                over = window.count() >= window.limit
            except Exception as exc:  # noqa: BLE001 - a cache outage fails open
                logger.warning("auth_throttle_cache_unavailable", error=str(exc)[:200])
                window, over = None, False
            if over:
                return too_many_failures(window)
        response = self.get_response(request)
        if window is not None and response.status_code == 401:
            try:
                window.hit()
            except Exception as exc:  # noqa: BLE001 - a cache outage fails open
                logger.warning("auth_throttle_cache_unavailable", error=str(exc)[:200])
        return response


def too_many_failures(window: Window) -> JsonResponse:
    """The API's 429 envelope, naming the limit and when to try again."""
    wait = window.wait
    response = JsonResponse(
        {
            "success": False,
            "error": {
                "code": "throttled",
                "message": (
                    f"Too many failed authentication attempts from this address (limit "
                    f"{window.limit} per {window.duration} s). Try again in {wait} seconds."
                ),
                "details": {"retry_after": wait, "limit": "AUTH_FAILURE_RATE"},
            },
        },
        status=429,
    )
    response["Retry-After"] = str(wait)
    return response
