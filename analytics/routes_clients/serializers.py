"""Query-parameter validation and response shapes for ``GET /gateway/top-routes`` and
``GET /gateway/client-analytics``, on top of the shared window parameters
(``analytics.window``). Everything a client can get wrong is a 400 naming the parameter
and what is allowed."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from analytics.fields import (
    JsonBooleanField,
    StorageMetaSerializer,
    StrictCharField,
    StrictChoiceField,
    WholeNumberField,
    choice_error,
)
from analytics.useragent import DEVICE_TYPES
from analytics.window import WindowQuerySerializer

MAX_TEXT_PARAM = 200

ROUTE_ORDER_BY = ("requests", "errors", "error_rate", "avg_time", "p95_time", "tokens")
CLIENT_ORDER_BY = ("requests", "errors", "tokens", "cost", "last_activity")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
MAX_CLIENT_OFFSET = 1_000_000


class TopRoutesQuerySerializer(WindowQuerySerializer):
    limit = WholeNumberField(
        required=False, default=10, min_value=1, max_value=100, help_text="Routes to return."
    )
    order_by = StrictChoiceField(
        choices=ROUTE_ORDER_BY,
        required=False,
        default="requests",
        error_messages=choice_error("order_by"),
        help_text="Rank routes by this, highest first (ties: path, then method).",
    )
    method = StrictChoiceField(
        allow_blank=True,
        choices=HTTP_METHODS,
        required=False,
        error_messages=choice_error("method"),
        help_text="Only requests with this HTTP method (case-insensitive).",
    )
    path = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=MAX_TEXT_PARAM,
        help_text="Only requests whose raw path is exactly this (before templating).",
    )
    route = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=MAX_TEXT_PARAM,
        help_text="Only requests whose path template is exactly this, e.g. /v1/files/{id}.",
    )
    group_ids = JsonBooleanField(
        required=False,
        default=True,
        help_text="Group paths that differ only by ids under a template (default true); "
        "false ranks raw paths.",
    )
    exact = JsonBooleanField(
        required=False,
        default=False,
        help_text="true: answer from raw rows only, never from the routes_15m rollup "
        "(slower; exact percentiles). data.meta.source says which storage answered, "
        "data.meta.approximate which values came from a sketch.",
    )

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, dict) and isinstance(data.get("method"), str):
            data = {**data, "method": data["method"].upper()}
        return super().to_internal_value(data)


class ClientAnalyticsQuerySerializer(WindowQuerySerializer):
    limit = WholeNumberField(
        required=False, default=50, min_value=1, max_value=1000, help_text="Clients per page."
    )
    offset = WholeNumberField(
        required=False,
        default=0,
        min_value=0,
        max_value=MAX_CLIENT_OFFSET,
        help_text="Clients to skip (follow `pagination.next` instead of computing it).",
    )
    order_by = StrictChoiceField(
        choices=CLIENT_ORDER_BY,
        required=False,
        default="requests",
        error_messages=choice_error("order_by"),
        help_text="Rank clients by this, highest first (ties: client_id ascending).",
    )
    search = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=MAX_TEXT_PARAM,
        trim_whitespace=False,
        help_text="Only clients whose client_id contains this text (case-insensitive).",
    )
    device_type = StrictChoiceField(
        allow_blank=True,
        choices=DEVICE_TYPES,
        required=False,
        error_messages=choice_error("device_type"),
        help_text="Only requests from this device type (recorded by the gateway, else parsed "
        "from the user agent).",
    )
    browser = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=MAX_TEXT_PARAM,
        help_text="Only requests from this browser or client library family "
        "(case-insensitive), e.g. Chrome, Python Requests.",
    )
    os = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=MAX_TEXT_PARAM,
        help_text="Only requests from this operating system family (case-insensitive).",
    )
    exact = JsonBooleanField(
        required=False,
        default=False,
        help_text="Read raw rows even when the client rollup (clients_1h) could answer "
        "(default false). Both give the same numbers; `data.meta.source` says which "
        "answered. search, device_type, browser, os, model_ids and endpoint_ids always "
        "read raw rows.",
    )

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, dict) and isinstance(data.get("device_type"), str):
            data = {**data, "device_type": data["device_type"].lower()}
        return super().to_internal_value(data)


# --- Responses (documentation and rendering) -------------------------------------------------


class RouteSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="Path template (ids replaced by {id}) or raw path.")
    method = serializers.CharField()
    request_count = serializers.IntegerField()
    error_count = serializers.IntegerField()
    error_rate = serializers.FloatField(help_text="error_count / request_count, 0..1.")
    avg_response_time = serializers.FloatField(help_text="ms")
    p95_response_time = serializers.IntegerField(
        help_text="ms; exact from raw rows, within the bound of response_time_percentiles "
        "in data.meta.approximate from the rollup."
    )
    p99_response_time = serializers.IntegerField(help_text="ms; as p95_response_time.")
    p95_ttft = serializers.IntegerField(
        allow_null=True,
        help_text="ms, 95th percentile time to first token over the route's streamed "
        "requests that recorded one; null when none did. Exact from raw rows, within the "
        "bound of ttft_percentiles in data.meta.approximate from the rollup.",
    )
    total_tokens = serializers.IntegerField()
    percent = serializers.FloatField(help_text="Share of all matching requests, 0..1.")


class RoutesSummarySerializer(serializers.Serializer):
    total_routes = serializers.IntegerField(help_text="Distinct (route, method) pairs.")
    total_requests = serializers.IntegerField()


class TopRoutesDataSerializer(serializers.Serializer):
    routes = RouteSerializer(many=True)
    summary = RoutesSummarySerializer()
    meta = StorageMetaSerializer()


class TopRoutesResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    data = TopRoutesDataSerializer()


class ClientSerializer(serializers.Serializer):
    client_id = serializers.CharField()
    client_ip = serializers.CharField(
        allow_null=True,
        help_text="Most frequent address; masked (IPv4 /24, IPv6 /48) when ANONYMIZE_IPS is on.",
    )
    request_count = serializers.IntegerField()
    error_count = serializers.IntegerField()
    avg_response_time = serializers.FloatField(help_text="ms")
    total_tokens = serializers.IntegerField()
    total_cost = serializers.FloatField(help_text="USD")
    cache_hit_rate = serializers.FloatField(
        allow_null=True,
        help_text="Requests answered from the gateway's cache / requests with a recorded "
        "routing decision, 0..1; null when none recorded one.",
    )
    cost_per_1k_tokens = serializers.FloatField(
        allow_null=True,
        help_text="USD per 1000 tokens: total_cost / total_tokens * 1000; null without tokens.",
    )
    last_activity = serializers.DateTimeField()
    user_agent = serializers.CharField(allow_null=True, help_text="Most frequent user agent.")
    device_type = serializers.CharField(allow_null=True)
    browser = serializers.CharField(allow_null=True)
    os = serializers.CharField(allow_null=True)
    unique_ips = serializers.IntegerField()
    countries = serializers.ListField(child=serializers.CharField())


class ClientsSummarySerializer(serializers.Serializer):
    total_clients = serializers.IntegerField()
    total_requests = serializers.IntegerField()


class PaginationSerializer(serializers.Serializer):
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
    has_more = serializers.BooleanField()
    next = serializers.CharField(allow_null=True)
    previous = serializers.CharField(allow_null=True)


class ClientAnalyticsDataSerializer(serializers.Serializer):
    clients = ClientSerializer(many=True)
    summary = ClientsSummarySerializer()
    pagination = PaginationSerializer()
    meta = StorageMetaSerializer()


class ClientAnalyticsResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    data = ClientAnalyticsDataSerializer()
