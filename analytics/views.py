"""``POST /gateway/analytics`` and ``GET /gateway/analytics/schema``: thin views over the
serializer (validation) and ``analytics.query`` (building and running)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.access import AuditedQueryMixin, resolve_project_scope
from analytics.cache import cached_for_request, encode, json_response
from analytics.query import AnalyticsQuery, run_analytics
from analytics.query.registry import (
    AUTO_BUCKET_POINT_BUDGET,
    BUCKETS,
    DEFAULT_METRICS,
    DIMENSIONS,
    MAX_FILTER_DEPTH,
    METRICS,
    OPERATORS,
)
from analytics.serializers import AnalyticsRequestSerializer, pop_project_filter

_RESPONSE = inline_serializer(
    "AnalyticsResponse",
    {
        "success": serializers.BooleanField(),
        "data": inline_serializer(
            "AnalyticsData",
            {
                "time_series": serializers.ListField(child=serializers.DictField()),
                "summary": serializers.DictField(),
                "query": serializers.DictField(),
                "meta": serializers.DictField(),
            },
        ),
    },
)

_EXAMPLE_REQUEST = {
    "project_ids": ["6f1c1f5e-0a43-4c1b-9a4e-1f0d6a2b9c11"],
    "start_time": "2024-01-01T00:00:00Z",
    "end_time": "2024-01-02T00:00:00Z",
    "time_bucket": "1h",
    "metrics": ["total_requests", "error_rate", "p95_response_time"],
    "group_by": ["model_name"],
    "filters": {"status_class": {"op": "ne", "value": "5xx"}, "country_code": ["US", "DE"]},
    "top_n": 5,
    "include_other": True,
}


class AnalyticsView(AuditedQueryMixin, APIView):
    audit_endpoint = "analytics"

    @extend_schema(
        summary="Query gateway analytics",
        description=(
            "Time series and summary of the chosen metrics over [start_time, end_time), "
            "bucketed by time_bucket in the given timezone, grouped and filtered by registry "
            "dimensions. See GET /gateway/analytics/schema for every metric, dimension and "
            "operator. Percentiles are exact (ClickHouse quantileExact: the value at index "
            "floor(level·n) of the sorted response times)."
        ),
        request=AnalyticsRequestSerializer,
        responses={200: _RESPONSE},
        examples=[
            OpenApiExample("Top models by requests", value=_EXAMPLE_REQUEST, request_only=True)
        ],
        tags=["analytics"],
    )
    def post(self, request: Request) -> Response:
        serializer = AnalyticsRequestSerializer(data=pop_project_filter(request.data))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        self.audit_params = (
            dict(serializer.initial_data) if isinstance(serializer.initial_data, dict) else {}
        )
        scope = resolve_project_scope(request, data["project_ids"])
        query = AnalyticsQuery.from_validated(data, scope)
        answer, cache_info = cached_for_request(
            request,
            "analytics",
            {**_echo(query), "filters": repr(query.filters)},
            scope,
            query.end,
            lambda: _answer(query),
        )
        payload, self.audit_rows = answer
        return json_response(request, payload, cache_info)


def _answer(query: AnalyticsQuery) -> tuple[bytes, int]:
    result = run_analytics(query)
    data = {
        "time_series": result.time_series,
        "summary": result.summary,
        "query": _echo(query),
        "meta": result.meta,
    }
    return encode({"success": True, "data": data}, len(result.time_series))


def _echo(query: AnalyticsQuery) -> dict[str, Any]:
    """The normalised request that was answered."""
    return {
        "start_time": query.start.isoformat().replace("+00:00", "Z"),
        "end_time": query.end.isoformat().replace("+00:00", "Z"),
        "time_bucket": query.bucket,
        "timezone": query.timezone,
        "metrics": list(query.metrics),
        "group_by": list(query.group_by),
        "project_scope": "all" if query.scope.is_all else query.scope.as_list(),
        "model_ids": [str(m) for m in query.model_ids],
        "endpoint_ids": [str(e) for e in query.endpoint_ids],
        "fill_gaps": query.fill_gaps,
        "top_n": query.top_n,
        "order_by": query.order_by or (query.metrics[0] if query.top_n else None),
        "include_other": query.include_other,
        "compare_previous": query.compare_previous,
    }


def analytics_schema() -> dict[str, Any]:
    """What the analytics endpoint accepts, generated from the registry."""
    return {
        "metrics": [
            {"name": m.name, "type": m.type, "unit": m.unit, "description": m.description}
            for m in METRICS.values()
        ],
        "default_metrics": list(DEFAULT_METRICS),
        "dimensions": [
            {
                "name": d.name,
                "type": d.type,
                "description": d.description,
                "operators": list(OPERATORS[d.type]),
                **({"values": list(d.values)} if d.values else {}),
            }
            for d in DIMENSIONS.values()
        ],
        "operators": {kind: list(ops) for kind, ops in OPERATORS.items()},
        "time_buckets": [*BUCKETS, "auto"],
        "default_time_bucket": settings.DEFAULT_TIME_BUCKET,
        "limits": {
            "max_query_time_range_days": settings.MAX_QUERY_TIME_RANGE,
            "max_result_size": settings.MAX_RESULT_SIZE,
            "auto_bucket_point_budget": AUTO_BUCKET_POINT_BUDGET,
            "max_filter_depth": MAX_FILTER_DEPTH,
            "max_group_by": 5,
            "max_top_n": 1000,
            "query_timeout_seconds": settings.QUERY_TIMEOUT,
        },
    }


class AnalyticsSchemaView(APIView):
    @extend_schema(
        summary="What POST /gateway/analytics accepts",
        responses={200: OpenApiTypes.OBJECT},
        tags=["analytics"],
    )
    def get(self, request: Request) -> Response:
        return Response({"success": True, "data": analytics_schema()})
