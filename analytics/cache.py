"""Response cache for the data endpoints (django-redis, or local memory in embedded mode).

Key: endpoint + the normalised request (the endpoint's cache params in the
``analytics.canonical`` form: sorted keys, list order kept, resolved bucket and timezone,
absolute times) + the caller's effective project scope, hashed. Two callers with different
scopes can never share an entry. Ranges that reach "now" live ``CACHE_RECENT_TTL`` seconds
so fresh traffic shows up; older ranges live ``CACHE_TTL``. A cache outage degrades to
uncached answers with a warning, never an error.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import structlog
from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponse
from prometheus_client import Counter
from rest_framework.response import Response

from analytics.canonical import canonical
from analytics.query.scope import ProjectScope

logger = structlog.get_logger(__name__)

CACHE_HITS = Counter("gateway_analytics_cache_hits_total", "Number of cache hits")
CACHE_MISSES = Counter("gateway_analytics_cache_misses_total", "Number of cache misses")
CACHE_ERRORS = Counter("gateway_analytics_cache_errors_total", "Cache backend failures")

KEY_VERSION = "v2"  # v2: params in analytics.canonical form
# A range whose end is within this of now counts as "reaching now".
RECENT_WINDOW = timedelta(minutes=5)

# The clock, in one place so tests can travel in time instead of sleeping.
clock: Callable[[], float] = time.time


@dataclass(frozen=True)
class CacheInfo:
    status: str  # "HIT" | "MISS" | "BYPASS"
    age_seconds: int = 0

    def apply(self, response: Any) -> Any:
        response["X-Cache"] = self.status
        if self.status == "HIT":
            response["Age"] = str(self.age_seconds)
        return response


def cache_key(endpoint: str, params: dict[str, Any], scope: ProjectScope) -> str:
    """Stable across equal requests; different for any difference in scope."""
    material = {
        "endpoint": endpoint,
        "params": canonical(params),
        "scope": "all" if scope.is_all else sorted(scope.as_list() or []),
    }
    digest = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
    return f"response:{KEY_VERSION}:{endpoint}:{digest}"


def ttl_for(end_time: datetime | None, now: float | None = None) -> int:
    """Seconds an answer may be served from cache."""
    current = datetime.fromtimestamp(now if now is not None else clock(), tz=UTC)
    if end_time is None or end_time >= current - RECENT_WINDOW:
        return min(settings.CACHE_RECENT_TTL, settings.CACHE_TTL)
    return settings.CACHE_TTL


def cached_answer(
    endpoint: str,
    params: dict[str, Any],
    scope: ProjectScope,
    end_time: datetime | None,
    compute: Callable[[], dict[str, Any]],
    *,
    refresh: bool = False,
    ttl: int | None = None,
    store: Callable[[], bool] | None = None,
) -> tuple[dict[str, Any], CacheInfo]:
    """The answer for this request: from cache when fresh, else computed and stored.
    ``refresh`` skips the read (background refresh writes a fresh entry); ``ttl`` replaces
    the range-based lifetime (a saved query's entry lives until its next refresh);
    ``store()``, asked after computing, False keeps the answer out of the cache (one the
    backup ClickHouse gave must not outlive the primary's outage)."""
    if not settings.CACHE_ENABLED:
        return compute(), CacheInfo("BYPASS")
    key = cache_key(endpoint, params, scope)
    now = clock()
    # One round trip reads the entry and the endpoint's generation; an entry written
    # before the last invalidation carries an older generation and counts as a miss.
    entry, generation = _get_with_generation(key, endpoint)
    if (
        not refresh
        and entry is not None
        and entry.get("generation") == generation
        and entry.get("expires_at", 0) > now
    ):
        CACHE_HITS.inc()
        return entry["data"], CacheInfo("HIT", int(now - entry["stored_at"]))
    CACHE_MISSES.inc()
    data = compute()
    if store is not None and not store():
        return data, CacheInfo("MISS")
    lifetime = ttl if ttl is not None else ttl_for(end_time, now)
    entry = {"data": data, "stored_at": now, "expires_at": now + lifetime, "generation": generation}
    _set(key, entry, lifetime)
    return data, CacheInfo("MISS")


def _generation_key(endpoint: str) -> str:
    return f"response-generation:{endpoint}"


def _get_with_generation(key: str, endpoint: str) -> tuple[dict[str, Any] | None, int]:
    generation_key = _generation_key(endpoint)
    try:
        found = cache.get_many([key, generation_key])
    except Exception as exc:  # noqa: BLE001 - any backend failure degrades to a miss
        CACHE_ERRORS.inc()
        logger.warning("cache_unavailable", operation="get", error=str(exc)[:200])
        return None, 0
    return found.get(key), int(found.get(generation_key) or 0)


def invalidate_endpoint(endpoint: str) -> None:
    """Make every cached answer of one endpoint stale (e.g. blocking stats after a rule
    change) by bumping its generation, which every entry records; works on any cache
    backend, and old entries simply expire."""
    key = _generation_key(endpoint)
    try:
        if cache.add(key, 1, timeout=None):
            return
        cache.incr(key)
    except ValueError:
        cache.set(key, 1, timeout=None)
    except Exception as exc:  # noqa: BLE001 - a cache outage must not fail the write
        CACHE_ERRORS.inc()
        logger.warning("cache_invalidate_failed", endpoint=endpoint, error=str(exc)[:200])


def _set(key: str, value: dict[str, Any], ttl: int) -> None:
    try:
        cache.set(key, value, timeout=ttl)
    except Exception as exc:  # noqa: BLE001 - the answer is still served, uncached
        CACHE_ERRORS.inc()
        logger.warning("cache_unavailable", operation="set", error=str(exc)[:200])


def encode(body: dict[str, Any], rows: int) -> tuple[bytes, int]:
    """An answer as cached: the JSON bytes of the whole response body (so a hit skips
    rendering, the largest cost left on a hit) and the row count the audit records."""
    return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS), rows


def json_response(request: Any, payload: bytes, info: CacheInfo) -> Any:
    """The cached bytes as they are for JSON clients; the browsable API still renders."""
    renderer = getattr(request, "accepted_renderer", None)
    if renderer is None or getattr(renderer, "format", "json") == "json":
        response: Any = HttpResponse(payload, content_type="application/json")
    else:
        response = Response(orjson.loads(payload))
    return info.apply(response)
