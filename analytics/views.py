"""``POST /gateway/analytics`` and ``GET /gateway/analytics/schema``: thin views over the
endpoint registry (``analytics.endpoints``: validation, scope, cache, the query)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.data_view import EndpointView
from analytics.endpoints import ENDPOINTS
from analytics.query.registry import (
    AUTO_BUCKET_POINT_BUDGET,
    BUCKETS,
    DEFAULT_METRICS,
    DIMENSIONS,
    MAX_FILTER_DEPTH,
    METRICS,
    OPERATORS,
    TAG_DIMENSION_FORM,
    TAG_KEY_PATTERN,
    tag_dimension,
)
from analytics.query.rollups import DAY_TIERS, FAMILIES
from analytics.requests_log.export import (
    EXPORT_RENDERERS,
    ExportFormatMixin,
    analytics_rows,
    export_format,
    export_responses,
    format_parameter,
)
from analytics.serializers import AnalyticsRequestSerializer
from budmetrics_site.filters import reject_unknown_params

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


class AnalyticsView(ExportFormatMixin, EndpointView):
    endpoint = ENDPOINTS["analytics"]
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, *EXPORT_RENDERERS]

    @extend_schema(
        summary="Query gateway analytics",
        description=(
            "Time series and summary of the chosen metrics over [start_time, end_time), "
            "bucketed by time_bucket in the given timezone, grouped and filtered by registry "
            "dimensions. See GET /gateway/analytics/schema for every metric, dimension and "
            "operator. Percentiles are exact (ClickHouse quantileExact: the value at index "
            "floor(level·n) of the sorted response times) when read from raw rows; a request "
            "a rollup covers (see the schema's rollups) is answered from it, with "
            "meta.source naming it and meta.approximate giving each sketch metric's error "
            "bound; exact: true forces raw rows. `?format=csv` or `?format=ndjson` "
            "answers the same query as a file, one line per time_series point: timestamp, "
            "the group_by dimensions, then the metrics. `meta.drilldown` turns any point "
            "into the GET /gateway/requests query listing exactly its rows."
        ),
        request=AnalyticsRequestSerializer,
        parameters=[format_parameter()],
        responses=export_responses(_RESPONSE),
        examples=[
            OpenApiExample("Top models by requests", value=_EXAMPLE_REQUEST, request_only=True)
        ],
        tags=["analytics"],
    )
    def post(self, request: Request) -> Any:
        fmt = export_format(request)
        if fmt:
            return self.respond_export(request, request.data, fmt, analytics_rows)
        return self.respond(request, request.data)


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
                "operators": list(d.operators),
                **({"values": list(d.values)} if d.values else {}),
            }
            for d in DIMENSIONS.values()
        ],
        # Dimensions named by the caller: any tag key, in group_by and filters alike.
        "dynamic_dimensions": [
            {
                "form": TAG_DIMENSION_FORM,
                "key_pattern": TAG_KEY_PATTERN,
                "type": tag.type,
                "description": "The value of a caller-supplied tag (the `tags` map), e.g. "
                "tag:team; null when a request has no such tag. The key is bound as a "
                "parameter; a key no request has groups everything under null.",
                "operators": list(tag.operators),
                "example": "tag:team",
            }
            for tag in (tag_dimension("team"),)
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
        "rollups": rollups_schema(),
    }


def rollups_schema() -> list[dict[str, Any]]:
    """What each rollup covers: a request whose metrics, group_by and filters are all
    listed, with a bucket of ``bucket`` or coarser, is answered from it (``meta.source``)
    unless it sends ``exact: true``; ``approximate`` metrics then carry these bounds.
    ``tiers`` are its coarser copies (1h, 6h, 1d) the planner reads for long ranges;
    ``day_tiers`` its copies in the local days of the zones of ``ROLLUP_DAY_ZONES`` (for
    1d and 1w buckets in that zone)."""
    return [
        {
            "name": rollup.name,
            "bucket": f"{rollup.bucket_seconds // 60}m",
            "dimensions": list(rollup.dimensions),
            # Registry metrics only: a rollup's local measures (the client rollup's count
            # maps) serve fixed endpoints and are not names a request may ask for.
            "metrics": [
                *(m for m in rollup.metrics if m in METRICS),
                *derived_covered(rollup.metrics),
            ],
            "approximate": rollup.approximate,
            "retention_days": settings.ROLLUP_RETENTION_DAYS,
            "tiers": [tier.name for tier in chain[1:]],
            "day_tiers": {zone: tier.name for zone, tier in DAY_TIERS.get(rollup.name, {}).items()},
        }
        for rollup, chain in ((chain[0], chain) for chain in FAMILIES.values())
    ]


def derived_covered(covered: Any) -> list[str]:
    return [m.name for m in METRICS.values() if m.derived_from and m.derived_from in covered]


class AnalyticsSchemaView(APIView):
    @extend_schema(
        summary="What POST /gateway/analytics accepts",
        responses={200: OpenApiTypes.OBJECT},
        tags=["analytics"],
    )
    def get(self, request: Request) -> Response:
        reject_unknown_params(request)
        return Response({"success": True, "data": analytics_schema()})
