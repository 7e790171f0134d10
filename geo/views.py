"""``GET /gateway/geographical-stats``: a thin view over ``GeoStatsQuerySerializer``
(validation) and ``geo.queries.geo_stats`` (SQL and shaping)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.access import AuditedQueryMixin
from analytics.cache import cached_for_request, encode, json_response
from analytics.traffic_serializers import ERROR_RESPONSES, query_parameters
from analytics.traffic_views import cache_params, validated_window
from geo.queries import geo_stats
from geo.serializers import GeoStatsQuerySerializer, GeoStatsResponseSerializer, example_response


class GeoStatsView(AuditedQueryMixin, APIView):
    audit_endpoint = "geographical-stats"

    @extend_schema(
        summary="Where requests come from",
        description=(
            "Requests over [start_time, end_time) by country, region and city, each list "
            "ranked by order_by and cut to `limit`. Requests without geo data are one "
            "`Unknown` entry per list (country_code null), never dropped. `summary` and "
            "`percent` count every matching request, not only the returned entries. "
            "`country_code` restricts everything to one country (drill-down)."
        ),
        parameters=query_parameters(GeoStatsQuerySerializer),
        responses={200: GeoStatsResponseSerializer, **ERROR_RESPONSES},
        examples=[
            OpenApiExample(
                "Countries, regions, cities",
                response_only=True,
                status_codes=["200"],
                value=example_response(),
            )
        ],
        tags=["geo"],
    )
    def get(self, request: Request) -> Response:
        data, window = validated_window(GeoStatsQuerySerializer, request)
        self.audit_params = data
        answer, cache_info = cached_for_request(
            request,
            "geographical-stats",
            cache_params(data),
            window.scope,
            window.end,
            lambda: _body(
                geo_stats(
                    window,
                    limit=data["limit"],
                    order_by=data["order_by"],
                    country_code=data.get("country_code") or None,
                )
            ),
        )
        payload, self.audit_rows = answer
        return json_response(request, payload, cache_info)


def _body(result: dict[str, Any]) -> tuple[bytes, int]:
    body = GeoStatsResponseSerializer({"success": True, "data": result}).data
    return encode(body, len(result["countries"]) + len(result["regions"]) + len(result["cities"]))
