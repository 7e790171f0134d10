"""Request rates on the shared cache (Redis in production, so every web process shares the
counts): a 429 with ``Retry-After`` past a rate, and never a 500 when the cache is down.

Three limits (README "Throttling"):

- ``project``: per caller x project scope (the projects a request names). BudApp proxies
  every user through one service key, so a limit per key alone is a limit on all of BudApp;
  per project, one busy tenant uses up its own budget and no one else's.
- ``client``: a higher ceiling per caller (API key or user) over all its projects.
- ``anon``: per client address, for views open to anonymous callers.

Failed authentication has its own limit per client address (``auth_failures``).

Counts are fixed windows (one ``INCR`` per request and limit), not DRF's list of
timestamps: a per-key ceiling of tens of thousands per minute would otherwise store and
rewrite a list that long on every request.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from collections.abc import Iterable
from typing import Any

import structlog
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from analytics.access.principals import ApiClientPrincipal

logger = structlog.get_logger(__name__)

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# A request naming more projects than this is keyed by the first ones (sorted); the
# per-client ceiling still bounds it.
_MAX_KEYED_PROJECTS = 100


def clock() -> float:
    """Now, in seconds (one place, so a test can hold a window still)."""
    return time.time()


def parse_rate(rate: str) -> tuple[int, int]:
    """``"600/min"`` → (600, 60): requests per window, window seconds."""
    count, _, period = rate.partition("/")
    return int(count), _PERIODS[period[0]]


def client_ip(request: HttpRequest) -> str:
    """The caller's address: ``REMOTE_ADDR``, or, behind ``TRUSTED_PROXY_COUNT`` proxies
    that each append to ``X-Forwarded-For``, the address the outermost trusted proxy saw.
    Never the left-most entry: the client writes that one itself."""
    remote = request.META.get("REMOTE_ADDR", "") or "unknown"
    proxies = getattr(settings, "TRUSTED_PROXY_COUNT", 0)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies <= 0 or not forwarded:
        return remote
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    if not hops:
        return remote
    return hops[-min(proxies, len(hops))]


class Window:
    """One fixed-window counter: ``hit`` counts a request and says whether it is within
    ``limit``; ``wait`` is the seconds until the window ends."""

    def __init__(self, name: str, rate: str, now: float | None = None) -> None:
        self.limit, self.duration = parse_rate(rate)
        self.now = clock() if now is None else now
        index = int(self.now // self.duration)
        self.key = f"throttle:{name}:{self.duration}:{index}"
        self.ends = (index + 1) * self.duration

    @property
    def wait(self) -> int:
        return max(1, math.ceil(self.ends - self.now))

    def count(self) -> int:
        return int(cache.get(self.key) or 0)

    def hit(self) -> bool:
        """Count one request; True while the count is within the limit."""
        timeout = self.wait + 1
        cache.add(self.key, 0, timeout)
        try:
            value = cache.incr(self.key)
        except ValueError:  # expired between add and incr
            cache.set(self.key, 1, timeout)
            value = 1
        return value <= self.limit


def _uuid_strings(values: Iterable[Any]) -> list[str]:
    found = []
    for value in values:
        for part in str(value).split(","):
            try:
                found.append(str(uuid.UUID(part.strip())))
            except ValueError:
                continue  # not a project id: the view's validation names it
    return found


def requested_projects(request: Request, view: Any) -> list[str]:
    """The project ids a request names, as the throttle keys it: the view's own answer
    (``throttle_projects``, e.g. a saved query's stored scope, None to pass), else ``project_ids`` /
    ``project_id`` in the query string, else ``project_ids`` or ``filters.project_id`` in
    a JSON body. Empty: the caller's whole access list (one shared bucket)."""
    own = getattr(view, "throttle_projects", None)
    named = own(request) if callable(own) else None
    if named is not None:
        return sorted(set(_uuid_strings(named)))
    values: list[Any] = []
    for name in ("project_ids", "project_id"):
        values.extend(request.query_params.getlist(name))
    if (
        not values
        and request.method == "POST"
        and request.content_type.startswith("application/json")
    ):
        body = request.data  # a bad body raises here the same 400/413/415 the view would
        if isinstance(body, dict):
            ids = body.get("project_ids")
            filters = body.get("filters")
            if ids is None and isinstance(filters, dict):
                ids = filters.get("project_id")
            if isinstance(ids, str):
                values = [ids]
            elif isinstance(ids, list):
                values = [v for v in ids if isinstance(v, str)]
    return sorted(set(_uuid_strings(values)))


def principal_ident(request: Request) -> str | None:
    """The caller's throttle identity, or None for an anonymous request."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    return str(user.pk) if isinstance(user, ApiClientPrincipal) else f"user:{user.pk}"


class _WindowThrottle(BaseThrottle):
    """A DRF throttle over one ``Window``; subclasses name the bucket and the rate."""

    scope = ""

    def __init__(self) -> None:
        self._wait: int | None = None

    def bucket(self, request: Request, view: Any) -> tuple[str, str | None] | None:
        """(bucket name, rate) for this request, or None when this throttle does not apply."""
        raise NotImplementedError

    def allow_request(self, request: Request, view: Any) -> bool:
        chosen = self.bucket(request, view)
        if chosen is None or not chosen[1]:
            return True
        name, rate = chosen
        window = Window(name, rate)
        try:
            allowed = window.hit()
        except Exception as exc:  # noqa: BLE001 - a cache outage fails open, never a 500
            logger.warning("throttle_cache_unavailable", scope=self.scope, error=str(exc)[:200])
            return True
        if not allowed:
            self._wait = window.wait
        return allowed

    def wait(self) -> float | None:
        return self._wait


def _rate(scope: str) -> str | None:
    return api_settings.DEFAULT_THROTTLE_RATES.get(scope)


class ClientRateThrottle(_WindowThrottle):
    """The per-caller ceiling (``client``: an API key or a user over all its projects), or
    the per-address ``anon`` rate for anonymous callers. Rates come from
    ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` at request time."""

    scope = "client"

    def bucket(self, request: Request, view: Any) -> tuple[str, str | None] | None:
        ident = principal_ident(request)
        if ident is None:
            return f"anon:ip:{client_ip(request)}", _rate("anon")
        return f"client:{ident}", _rate("client")


class ProjectRateThrottle(_WindowThrottle):
    """The fairness unit: one bucket per caller x project scope (``project`` rate), so a
    tenant that uses up its budget does not throttle other tenants behind the same key."""

    scope = "project"

    def bucket(self, request: Request, view: Any) -> tuple[str, str | None] | None:
        ident = principal_ident(request)
        rate = _rate("project")
        if ident is None or not rate:
            return None
        projects = requested_projects(request, view)[:_MAX_KEYED_PROJECTS]
        scope = hashlib.sha1(",".join(projects).encode(), usedforsecurity=False).hexdigest()
        return f"project:{ident}:{scope[:20] if projects else 'all'}", rate
