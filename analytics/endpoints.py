"""The endpoint registry: every data endpoint as (name, input serializer, selector, output
serializer), and ``answer``, the one way to answer any of them.

``answer(endpoint, params, principal, cache_policy)`` validates the params with the
endpoint's serializer, resolves the principal's project scope, and answers from the
response cache or by running the selector; it returns the encoded body, the cache status
and the row count the audit records. Errors are raised, never turned into responses here:
a view's exception handler renders them for HTTP, and a Celery task sees them, so its
retry policy applies. The data views (``analytics.data_view.EndpointView``), saved-query
runs, dashboard views, the dashboard warmer and the refresh task all come through here, so
none of them needs a request to reuse an endpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson
from django.conf import settings
from django.urls import reverse
from rest_framework import exceptions
from rest_framework import serializers as drf_serializers
from rest_framework.renderers import JSONRenderer

from analytics.access.audit import record_query_as
from analytics.access.scope import scope_for
from analytics.cache import CacheInfo, cached_answer, encode
from analytics.query import AnalyticsQuery, run_analytics
from analytics.query.buckets import format_time
from analytics.query.scope import ProjectScope
from analytics.query.trace import current as current_trace
from analytics.query.trace import tracing
from analytics.query.tree import Window
from analytics.routes_clients.queries import CLIENT_AGENT_COLUMNS, client_analytics, top_routes
from analytics.routes_clients.serializers import (
    ClientAnalyticsQuerySerializer,
    ClientAnalyticsResponseSerializer,
    TopRoutesQuerySerializer,
    TopRoutesResponseSerializer,
)
from analytics.serializers import AnalyticsRequestSerializer, pop_project_filter
from blocking import queries as blocking_queries
from blocking import stats as blocking_stats
from blocking.serializers import BlockingStatsQuerySerializer, BlockingStatsResponseSerializer
from budmetrics_site.errors import to_api_exception
from geo.queries import geo_stats
from geo.serializers import GeoStatsQuerySerializer, GeoStatsResponseSerializer

Data = dict[str, Any]
Selector = Callable[[Data, ProjectScope], Data]
PageUrl = Callable[[int], str]


@dataclass(frozen=True)
class CachePolicy:
    """How an answer uses the response cache. ``refresh``: recompute and store even when a
    fresh entry exists (background refresh, dashboard warming); ``ttl``: keep the entry
    this many seconds instead of the range-based lifetime (until a saved query's next
    refresh)."""

    refresh: bool = False
    ttl: int | None = None


NORMAL = CachePolicy()


def request_cache_params(data: Data, scope: ProjectScope) -> Data:
    """The validated request as a cache-key part; IP masking changes the answer too."""
    return {**data, "anonymize_ips": settings.ANONYMIZE_IPS}


@dataclass(frozen=True)
class Endpoint:
    """One data endpoint. ``selector(validated data, scope)`` returns the response's
    ``data``; ``output_serializer`` renders the whole ``{"success", "data"}`` body (None:
    as is); ``count_rows`` counts the rendered ``data`` for the audit; ``cache_params``
    is the request as the cache key sees it; ``audit_input`` audits the input as sent
    rather than the validated data (analytics' validated filters are trees);
    ``finish(result, data, page_url)`` builds the response data from the cached result
    after the cache, for parts that depend on the caller's URL (client-analytics' page
    links)."""

    name: str
    input_serializer: type[drf_serializers.Serializer]
    selector: Selector
    output_serializer: type[drf_serializers.Serializer] | None
    count_rows: Callable[[Data], int]
    url_name: str
    method: str = "GET"
    cache_params: Callable[[Data, ProjectScope], Data] = request_cache_params
    audit_input: bool = False
    finish: Callable[[Data, Data, PageUrl], Data] | None = None

    def input_data(self, params: Any) -> Any:
        """``params`` as the serializer reads them: a JSON body for POST (any JSON: the
        serializer rejects what is not an object), the query-string form for GET (so a
        saved query's JSON params and a real query string agree)."""
        if self.method == "POST":
            return pop_project_filter(params)
        return form_data(params)


def form_data(params: Mapping[str, Any]) -> dict[str, str]:
    """Params as a GET query string carries them: lists comma-joined, booleans
    ``true``/``false``, nulls left out (strings from a real query string pass unchanged)."""
    form: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, list | tuple):
            form[key] = ",".join(str(v) for v in value)
        elif isinstance(value, bool):
            form[key] = "true" if value else "false"
        elif value is not None:
            form[key] = str(value)
    return form


@dataclass(frozen=True)
class Validated:
    """A request that passed its endpoint's serializer."""

    endpoint: Endpoint
    params: Any  # as given
    data: Data  # validated
    audit_params: Data  # what the audit records


@dataclass(frozen=True)
class Answer:
    payload: bytes  # the whole JSON body, as sent to JSON clients
    cache: CacheInfo
    rows: int  # for the audit


def validate(endpoint: Endpoint, params: Any) -> Validated:
    """Validate ``params`` with the endpoint's serializer (DRF ValidationError if not)."""
    serializer = endpoint.input_serializer(data=endpoint.input_data(params))
    serializer.is_valid(raise_exception=True)
    data = dict(serializer.validated_data)
    initial = serializer.initial_data
    audit = dict(initial) if endpoint.audit_input and isinstance(initial, dict) else data
    return Validated(endpoint, params, data, audit)


def answer(
    endpoint: Endpoint,
    params: Mapping[str, Any],
    principal: Any,
    cache_policy: CachePolicy = NORMAL,
    *,
    page_url: PageUrl | None = None,
) -> Answer:
    """The endpoint's answer to ``params`` for ``principal`` (a user or an API client
    principal). Raises what validation, scope resolution or the query raise."""
    return answer_validated(validate(endpoint, params), principal, cache_policy, page_url=page_url)


def answer_validated(
    question: Validated,
    principal: Any,
    cache_policy: CachePolicy = NORMAL,
    *,
    page_url: PageUrl | None = None,
    debug: bool = False,
) -> Answer:
    """``answer`` after ``validate``: views validate first, so the audit records the
    parameters even when scope resolution or the query then fails. The body's ``meta``
    says which ClickHouse served it and, with ``debug``, what each statement did; a debug
    answer is computed afresh and never cached (its figures are this run's), and one the
    backup served is not cached either."""
    endpoint, data = question.endpoint, question.data
    scope = scope_for(principal, data["project_ids"])

    def compute() -> Any:
        return _compute(endpoint, data, scope)

    with tracing(debug=debug) as trace:
        if debug:
            value, info = compute(), CacheInfo("BYPASS")
        else:
            value, info = cached_answer(
                endpoint.name,
                endpoint.cache_params(data, scope),
                scope,
                data["end_time"],
                compute,
                refresh=cache_policy.refresh,
                ttl=cache_policy.ttl,
                store=lambda: not trace.used_backup,
            )
    if endpoint.finish is None:
        payload, rows = value
        return Answer(with_meta(payload, trace.meta()), info, rows)
    links = page_url or page_url_for(endpoint, question.params)
    body = _body(endpoint, endpoint.finish(value, data, links))
    # Rendered as DRF renders a Response, so the bytes equal the endpoint's own rendering.
    payload = JSONRenderer().render(body)
    return Answer(with_meta(payload, trace.meta()), info, endpoint.count_rows(body["data"]))


def with_meta(payload: bytes, meta: Data) -> bytes:
    """The encoded body with its top-level ``meta`` added after the cache (so a cached
    answer is never re-parsed: the object's closing brace is replaced)."""
    if not payload.endswith(b"}"):
        raise ValueError("an answer's body is a JSON object")
    return payload[:-1] + b',"meta":' + orjson.dumps(meta, option=orjson.OPT_NON_STR_KEYS) + b"}"


def _compute(endpoint: Endpoint, data: Data, scope: ProjectScope) -> Any:
    """What the cache stores: the encoded body and its row count, or, for an endpoint
    finished after the cache, the selector's result."""
    result = endpoint.selector(data, scope)
    active = current_trace()
    if isinstance(result, dict) and "meta" not in result and active is not None:
        result = {**result, "meta": active.storage()}
    if endpoint.finish is not None:
        return result
    body = _body(endpoint, result)
    return encode(body, endpoint.count_rows(body["data"]))


def _body(endpoint: Endpoint, data: Data) -> Data:
    body = {"success": True, "data": data}
    return endpoint.output_serializer(body).data if endpoint.output_serializer else body


def page_url_for(endpoint: Endpoint, params: Mapping[str, Any], origin: str = "") -> PageUrl:
    """Page links that ask the endpoint itself with ``params`` (for an answer that was
    not a GET of the endpoint, such as a saved-query run); ``origin`` is
    ``scheme://host`` when known."""
    base = origin + reverse(endpoint.url_name)
    form = form_data(params)

    def link(offset: int) -> str:
        return f"{base}?{urlencode({**form, 'offset': str(offset)})}"

    return link


def answer_audited(
    endpoint: Endpoint,
    params: Mapping[str, Any],
    principal: Any,
    cache_policy: CachePolicy = NORMAL,
    *,
    request_id: str = "",
    page_url: PageUrl | None = None,
) -> Answer:
    """``answer``, audited as a query of the endpoint by ``principal`` whatever the
    outcome (the data views audit through ``AuditedQueryMixin`` instead); for callers
    without a view of the endpoint: saved-query runs, dashboards, background jobs."""
    started = time.perf_counter()
    audit_params: Data = {}
    rows, status = 0, 200
    try:
        question = validate(endpoint, params)
        audit_params = question.audit_params
        result = answer_validated(question, principal, cache_policy, page_url=page_url)
        rows = result.rows
        return result
    except Exception as exc:
        mapped = to_api_exception(exc)  # a timeout is audited as the 504 it answers
        status = mapped.status_code if isinstance(mapped, exceptions.APIException) else 500
        raise
    finally:
        record_query_as(
            principal,
            endpoint=endpoint.name,
            params=audit_params,
            duration_ms=(time.perf_counter() - started) * 1000,
            rows=rows,
            status_code=status,
            request_id=request_id,
        )


# --- analytics ------------------------------------------------------------------------------


def analytics_echo(data: Data, scope: ProjectScope) -> Data:
    """The normalised request that was answered (the response's ``query``)."""
    return {
        "start_time": format_time(data["start_time"]),
        "end_time": format_time(data["end_time"]),
        "time_bucket": data["time_bucket"],
        "timezone": data["timezone"],
        "metrics": list(data["metrics"]),
        "group_by": list(data["group_by"]),
        "project_scope": "all" if scope.is_all else scope.as_list(),
        "model_ids": [str(m) for m in data["model_ids"]],
        "endpoint_ids": [str(e) for e in data["endpoint_ids"]],
        "fill_gaps": data["fill_gaps"],
        "top_n": data["top_n"],
        "order_by": data["order_by"] or (data["metrics"][0] if data["top_n"] else None),
        "include_other": data["include_other"],
        "compare_previous": data["compare_previous"],
    }


def analytics_selector(data: Data, scope: ProjectScope) -> Data:
    result = run_analytics(AnalyticsQuery.from_validated(data, scope))
    result.meta["drilldown"] = {"path": reverse("gateway-requests"), **result.meta["drilldown"]}
    return {
        "time_series": result.time_series,
        "summary": result.summary,
        "query": analytics_echo(data, scope),
        "meta": result.meta,
    }


def analytics_cache_params(data: Data, scope: ProjectScope) -> Data:
    """The echo (resolved bucket, zone, absolute times) plus the filter tree's text and the
    warnings (``auto`` resolving to 1h answers with a warning that "1h" does not have)."""
    return {
        **analytics_echo(data, scope),
        "filters": repr(data["filters"]),
        "warnings": list(data["warnings"]),
        "exact": data.get("exact", False),  # raw and rollup answers differ in sketches
    }


# --- traffic: top routes, clients, geography -----------------------------------------------


def window(data: Data, scope: ProjectScope) -> Window:
    return Window(
        scope=scope,
        start=data["start_time"],
        end=data["end_time"],
        model_ids=tuple(data["model_ids"]),
        endpoint_ids=tuple(data["endpoint_ids"]),
    )


def top_routes_selector(data: Data, scope: ProjectScope) -> Data:
    return top_routes(
        window(data, scope),
        limit=data["limit"],
        order_by=data["order_by"],
        method=data.get("method") or None,
        path=data.get("path") or None,
        route=data.get("route") or None,
        group_ids=data["group_ids"],
        exact=data.get("exact", False),
    )


def client_analytics_selector(data: Data, scope: ProjectScope) -> Data:
    return client_analytics(
        window(data, scope),
        limit=data["limit"],
        offset=data["offset"],
        order_by=data["order_by"],
        search=data.get("search") or None,
        agent_filters={c: data[c] for c in CLIENT_AGENT_COLUMNS if data.get(c)},
        exact=data["exact"],
    )


def client_analytics_page(result: Data, data: Data, page_url: PageUrl) -> Data:
    """A cached page of clients with its links, which depend on the caller's URL."""
    limit, offset = data["limit"], data["offset"]
    return {
        "meta": result.get("meta", {"source": "raw", "approximate": {}}),  # pre-rollup cache
        "clients": result["clients"],
        "summary": result["summary"],
        "pagination": {
            "limit": limit,
            "offset": offset,
            "has_more": result["has_more"],
            "next": page_url(offset + limit) if result["has_more"] else None,
            "previous": page_url(max(offset - limit, 0)) if offset else None,
        },
    }


def geo_selector(data: Data, scope: ProjectScope) -> Data:
    return geo_stats(
        window(data, scope),
        limit=data["limit"],
        order_by=data["order_by"],
        country_code=data.get("country_code") or None,
        exact=data.get("exact", False),
    )


# --- blocking ---------------------------------------------------------------------------------


def blocking_selector(data: Data, scope: ProjectScope) -> Data:
    query = blocking_queries.StatsQuery(
        scope=scope,
        start=data["start_time"],
        end=data["end_time"],
        limit=data["limit"],
        bucket=data["time_bucket"],
        model_ids=tuple(data["model_ids"]),
        endpoint_ids=tuple(data["endpoint_ids"]),
        timezone=data.get("timezone", "UTC"),
        exact=data["exact"],
    )
    return blocking_stats.blocking_stats(query)


# --- the registry -----------------------------------------------------------------------------

ENDPOINTS: dict[str, Endpoint] = {
    endpoint.name: endpoint
    for endpoint in (
        Endpoint(
            "analytics",
            AnalyticsRequestSerializer,
            analytics_selector,
            None,
            lambda data: len(data["time_series"]),
            url_name="gateway-analytics",
            method="POST",
            cache_params=analytics_cache_params,
            audit_input=True,
        ),
        Endpoint(
            "geographical-stats",
            GeoStatsQuerySerializer,
            geo_selector,
            GeoStatsResponseSerializer,
            lambda data: len(data["countries"]) + len(data["regions"]) + len(data["cities"]),
            url_name="gateway-geographical-stats",
        ),
        Endpoint(
            "top-routes",
            TopRoutesQuerySerializer,
            top_routes_selector,
            TopRoutesResponseSerializer,
            lambda data: len(data["routes"]),
            url_name="gateway-top-routes",
        ),
        Endpoint(
            "client-analytics",
            ClientAnalyticsQuerySerializer,
            client_analytics_selector,
            ClientAnalyticsResponseSerializer,
            lambda data: len(data["clients"]),
            url_name="gateway-client-analytics",
            finish=client_analytics_page,
        ),
        Endpoint(
            "blocking-stats",
            BlockingStatsQuerySerializer,
            blocking_selector,
            BlockingStatsResponseSerializer,
            blocking_stats.count_rows,
            url_name="blocking-stats",
        ),
    )
}
