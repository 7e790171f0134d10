"""``GET /gateway/geographical-stats``: a thin view over the endpoint registry
(``analytics.endpoints``: ``GeoStatsQuerySerializer``, ``geo.queries.geo_stats``, cache)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from analytics.data_view import EndpointView
from analytics.endpoints import ENDPOINTS
from analytics.window import query_parameters
from geo.serializers import GeoStatsQuerySerializer, GeoStatsResponseSerializer, example_response


class GeoStatsView(EndpointView):
    endpoint = ENDPOINTS["geographical-stats"]

    @extend_schema(
        summary="Where requests come from",
        description=(
            "Requests over [start_time, end_time) by country, region and city, each list "
            "ranked by order_by and cut to `limit`. Requests without geo data are one "
            "`Unknown` entry per list (country_code null), never dropped. `summary` and "
            "`percent` count every matching request, not only the returned entries. "
            "`country_code` restricts everything to one country (drill-down). Answered from "
            "the geo_15m rollup (p95 and unique_users within the bounds in "
            "`data.meta.approximate`) unless `exact=true` or `model_ids`/`endpoint_ids` are "
            "given (raw rows, exact); `data.meta.source` says which."
        ),
        parameters=query_parameters(GeoStatsQuerySerializer),
        responses={200: GeoStatsResponseSerializer},
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
        return self.respond_to_query(request)
