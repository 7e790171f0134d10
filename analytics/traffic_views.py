"""``GET /gateway/top-routes`` and ``GET /gateway/client-analytics``: thin views over the
query serializers (validation) and ``analytics.traffic_queries`` (SQL and shaping)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.access import AuditedQueryMixin, resolve_project_scope
from analytics.cache import cached_for_request, encode, json_response
from analytics.traffic_queries import CLIENT_AGENT_COLUMNS, Window, client_analytics, top_routes
from analytics.traffic_serializers import (
    ERROR_RESPONSES,
    ClientAnalyticsQuerySerializer,
    ClientAnalyticsResponseSerializer,
    TopRoutesQuerySerializer,
    TopRoutesResponseSerializer,
    query_parameters,
    query_params_data,
)

_PROJECT = "6f1c1f5e-0a43-4c1b-9a4e-1f0d6a2b9c11"


def cache_params(data: dict[str, Any]) -> dict[str, Any]:
    """The validated request as a cache-key part; IP masking changes the answer too."""
    return {**data, "anonymize_ips": settings.ANONYMIZE_IPS}


def validated_window(serializer_class: type, request: Request) -> tuple[dict[str, Any], Window]:
    """Validate the query string and resolve the caller's project scope (403 naming any
    project they may not read)."""
    serializer = serializer_class(data=query_params_data(request.query_params))
    serializer.is_valid(raise_exception=True)
    data = dict(serializer.validated_data)
    scope = resolve_project_scope(request, data["project_ids"])
    window = Window(
        scope=scope,
        start=data["start_time"],
        end=data["end_time"],
        model_ids=tuple(data["model_ids"]),
        endpoint_ids=tuple(data["endpoint_ids"]),
    )
    return data, window


class TopRoutesView(AuditedQueryMixin, APIView):
    audit_endpoint = "top-routes"

    @extend_schema(
        summary="Most requested routes and their performance",
        description=(
            "Routes (path template and HTTP method) over [start_time, end_time), ranked by "
            "order_by. Paths that differ only by ids are grouped under a template: UUIDs, "
            "numbers, long hex strings and prefixed API ids (file-…, chatcmpl-…, batch_…) "
            "become {id}, so /v1/files/file-abc123 is counted as /v1/files/{id}. `path` "
            "filters by the raw path, `route` by the template. Percentiles are exact; "
            "`percent` and `summary` count every matching request, not only the returned "
            "routes."
        ),
        parameters=query_parameters(TopRoutesQuerySerializer),
        responses={200: TopRoutesResponseSerializer, **ERROR_RESPONSES},
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
        data, window = validated_window(TopRoutesQuerySerializer, request)
        self.audit_params = data
        answer, cache_info = cached_for_request(
            request,
            "top-routes",
            cache_params(data),
            window.scope,
            window.end,
            lambda: _top_routes_body(
                top_routes(
                    window,
                    limit=data["limit"],
                    order_by=data["order_by"],
                    method=data.get("method") or None,
                    path=data.get("path") or None,
                    route=data.get("route") or None,
                    group_ids=data["group_ids"],
                )
            ),
        )
        payload, self.audit_rows = answer
        return json_response(request, payload, cache_info)


def _top_routes_body(result: dict[str, Any]) -> tuple[bytes, int]:
    body = TopRoutesResponseSerializer({"success": True, "data": result}).data
    return encode(body, len(result["routes"]))


def _page_link(request: Request, offset: int) -> str:
    query = request.query_params.copy()
    query["offset"] = str(offset)
    return request.build_absolute_uri(request.path) + "?" + query.urlencode()


class ClientAnalyticsView(AuditedQueryMixin, APIView):
    audit_endpoint = "client-analytics"

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
        responses={200: ClientAnalyticsResponseSerializer, **ERROR_RESPONSES},
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
        data, window = validated_window(ClientAnalyticsQuerySerializer, request)
        self.audit_params = data
        limit, offset = data["limit"], data["offset"]
        result, cache_info = cached_for_request(
            request,
            "client-analytics",
            cache_params(data),
            window.scope,
            window.end,
            lambda: client_analytics(
                window,
                limit=limit,
                offset=offset,
                order_by=data["order_by"],
                search=data.get("search") or None,
                agent_filters={c: data[c] for c in CLIENT_AGENT_COLUMNS if data.get(c)},
            ),
        )
        self.audit_rows = len(result["clients"])
        pagination = {
            "limit": limit,
            "offset": offset,
            "has_more": result["has_more"],
            "next": _page_link(request, offset + limit) if result["has_more"] else None,
            "previous": _page_link(request, max(offset - limit, 0)) if offset else None,
        }
        payload = {
            "clients": result["clients"],
            "summary": result["summary"],
            "pagination": pagination,
        }
        body = ClientAnalyticsResponseSerializer({"success": True, "data": payload}).data
        return cache_info.apply(Response(body))
