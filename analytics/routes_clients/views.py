"""``GET /gateway/top-routes`` and ``GET /gateway/client-analytics``: thin views over the
endpoint registry (``analytics.endpoints``: validation, scope, cache, the query)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from analytics.data_view import EndpointView
from analytics.endpoints import ENDPOINTS
from analytics.routes_clients.serializers import (
    ClientAnalyticsQuerySerializer,
    ClientAnalyticsResponseSerializer,
    TopRoutesQuerySerializer,
    TopRoutesResponseSerializer,
)
from analytics.window import query_parameters

_PROJECT = "6f1c1f5e-0a43-4c1b-9a4e-1f0d6a2b9c11"


class TopRoutesView(EndpointView):
    endpoint = ENDPOINTS["top-routes"]

    @extend_schema(
        summary="Most requested routes and their performance",
        description=(
            "Routes (path template and HTTP method) over [start_time, end_time), ranked by "
            "order_by. Paths that differ only by ids are grouped under a template: UUIDs, "
            "numbers, long hex strings and prefixed API ids (file-…, chatcmpl-…, batch_…) "
            "become {id}, so /v1/files/file-abc123 is counted as /v1/files/{id}. `path` "
            "filters by the raw path, `route` by the template. Answered from the routes_15m "
            "rollup (percentiles within the bound in `data.meta.approximate`) unless "
            "`exact=true` or `model_ids`/`endpoint_ids` are given (raw rows, exact "
            "percentiles); `data.meta.source` says which. `percent` and `summary` count "
            "every matching request, not only the returned routes."
        ),
        parameters=query_parameters(TopRoutesQuerySerializer),
        responses={200: TopRoutesResponseSerializer},
        examples=[
            OpenApiExample(
                "Top routes",
                response_only=True,
                status_codes=["200"],
                value={
                    "success": True,
                    "data": {
                        "routes": [
                            {
                                "path": "/v1/chat/completions",
                                "method": "POST",
                                "request_count": 10000,
                                "error_count": 100,
                                "error_rate": 0.01,
                                "avg_response_time": 250.4,
                                "p95_response_time": 500,
                                "p99_response_time": 1000,
                                "total_tokens": 500000,
                                "percent": 0.8,
                            }
                        ],
                        "summary": {"total_routes": 12, "total_requests": 12500},
                    },
                },
            ),
        ],
        tags=["routes"],
    )
    def get(self, request: Request) -> Response:
        return self.respond_to_query(request)


class ClientAnalyticsView(EndpointView):
    endpoint = ENDPOINTS["client-analytics"]

    @extend_schema(
        summary="Usage by client (API key)",
        description=(
            "One row per client_id over [start_time, end_time): its most frequent IP and "
            "user agent, request/error counts, mean response time, tokens, cost, last "
            "activity, distinct IPs and countries. device_type, browser and os are the "
            "client's most frequent values recorded by the gateway, else parsed from its "
            "most frequent user agent (ua-parser). The device_type/browser/os filters select "
            "requests by the same rule. Pages are stable (ties ordered by client_id); follow "
            "`pagination.next`. `summary` counts every matching client, not only the page. "
            "Requests without a client_id are not listed."
        ),
        parameters=query_parameters(ClientAnalyticsQuerySerializer),
        responses={200: ClientAnalyticsResponseSerializer},
        examples=[
            OpenApiExample(
                "A page of clients",
                response_only=True,
                status_codes=["200"],
                value={
                    "success": True,
                    "data": {
                        "clients": [
                            {
                                "client_id": "api_key_123",
                                "client_ip": "10.0.0.1",
                                "request_count": 5000,
                                "error_count": 50,
                                "avg_response_time": 300.2,
                                "total_tokens": 250000,
                                "total_cost": 125.5,
                                "last_activity": "2024-01-31T23:59:59Z",
                                "user_agent": "python-requests/2.28.0",
                                "device_type": "other",
                                "browser": "Python Requests",
                                "os": None,
                                "unique_ips": 3,
                                "countries": ["DE", "US"],
                            }
                        ],
                        "summary": {"total_clients": 120, "total_requests": 64000},
                        "pagination": {
                            "limit": 1,
                            "offset": 0,
                            "has_more": True,
                            "next": "https://budmetrics.example/gateway/client-analytics"
                            f"?project_ids={_PROJECT}&limit=1&offset=1",
                            "previous": None,
                        },
                    },
                },
            ),
        ],
        tags=["clients"],
    )
    def get(self, request: Request) -> Response:
        return self.respond_to_query(request)
