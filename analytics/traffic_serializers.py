"""Query-parameter validation and response shapes for ``GET /gateway/top-routes`` and
``GET /gateway/client-analytics`` (plus the common window/scope parameters that
``GET /gateway/geographical-stats`` shares). Everything a client can get wrong is a 400
naming the parameter and what is allowed."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.http import QueryDict
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.fields import empty

from analytics.fields import (
    FlexibleDateTimeField,
    JsonBooleanField,
    StrictCharField,
    StrictChoiceField,
    StrictQueryMixin,
    UUIDListField,
    WholeNumberField,
    choice_error,
    validate_time_range,
)
from budmetrics_site.openapi import ErrorEnvelopeSerializer

DEFAULT_WINDOW = timedelta(days=7)
MAX_TEXT_PARAM = 200
LIST_PARAMS = ("project_ids", "model_ids", "endpoint_ids")

ROUTE_ORDER_BY = ("requests", "errors", "error_rate", "avg_time", "p95_time", "tokens")
CLIENT_ORDER_BY = ("requests", "errors", "tokens", "cost", "last_activity")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
DEVICE_TYPES = ("desktop", "mobile", "tablet", "bot", "other")
MAX_CLIENT_OFFSET = 1_000_000


def query_params_data(query: QueryDict) -> dict[str, Any]:
    """A GET query as serializer input: repeated list parameters
    (``project_ids=a&project_ids=b``) are joined like the comma form; for any other
    parameter the last value wins, as ``QueryDict.get`` does."""
    data: dict[str, Any] = {}
    for key, values in query.lists():
        data[key] = ",".join(values) if key in LIST_PARAMS else values[-1]
    return data


def default_end_time() -> datetime:
    """Now, rounded up to the next whole minute: two identical requests without times in
    the same minute ask the same question, so they share one cache entry."""
    now = timezone.now()
    minute = now.replace(second=0, microsecond=0)
    return minute if minute == now else minute + timedelta(minutes=1)


class WindowQuerySerializer(StrictQueryMixin, serializers.Serializer):
    """The time window and scope every traffic endpoint takes. Unknown parameters are a
    400 (a typo such as ``project_id`` must not silently widen the scope)."""

    start_time = FlexibleDateTimeField(
        required=False, help_text="Inclusive start, ISO 8601 (default: end_time minus 7 days)."
    )
    end_time = FlexibleDateTimeField(
        required=False,
        help_text="Exclusive end, ISO 8601 (default: now, rounded up to the whole minute).",
    )
    project_ids = UUIDListField(
        help_text="Comma-separated project UUIDs (default: every project you may read)."
    )
    model_ids = UUIDListField(help_text="Comma-separated model UUIDs to include.")
    endpoint_ids = UUIDListField(help_text="Comma-separated endpoint UUIDs to include.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        end: datetime = attrs.get("end_time") or default_end_time()
        start: datetime = attrs.get("start_time") or end - DEFAULT_WINDOW
        validate_time_range(start, end)
        attrs["start_time"], attrs["end_time"] = start, end
        return attrs


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

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, dict) and isinstance(data.get("device_type"), str):
            data = {**data, "device_type": data["device_type"].lower()}
        return super().to_internal_value(data)


# --- Responses (documentation and rendering) -------------------------------------------------


# The one error envelope of the API; every operation documents its errors with it
# (budmetrics_site.openapi), so this mapping is kept only for existing imports.
ERROR_RESPONSES: dict[int, Any] = {
    code: ErrorEnvelopeSerializer for code in (400, 401, 403, 422, 429, 503, 504)
}


class RouteSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="Path template (ids replaced by {id}) or raw path.")
    method = serializers.CharField()
    request_count = serializers.IntegerField()
    error_count = serializers.IntegerField()
    error_rate = serializers.FloatField(help_text="error_count / request_count, 0..1.")
    avg_response_time = serializers.FloatField(help_text="ms")
    p95_response_time = serializers.IntegerField(help_text="ms, exact")
    p99_response_time = serializers.IntegerField(help_text="ms, exact")
    total_tokens = serializers.IntegerField()
    percent = serializers.FloatField(help_text="Share of all matching requests, 0..1.")


class RoutesSummarySerializer(serializers.Serializer):
    total_routes = serializers.IntegerField(help_text="Distinct (route, method) pairs.")
    total_requests = serializers.IntegerField()


class TopRoutesDataSerializer(serializers.Serializer):
    routes = RouteSerializer(many=True)
    summary = RoutesSummarySerializer()


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


class ClientAnalyticsResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    data = ClientAnalyticsDataSerializer()


# --- OpenAPI ---------------------------------------------------------------------------------


def _field_schema(field: serializers.Field) -> dict[str, Any]:
    """The OpenAPI schema of one query parameter, including the project's custom fields
    (which drf-spectacular cannot introspect on its own)."""
    if isinstance(field, FlexibleDateTimeField):
        return {"type": "string", "format": "date-time"}
    if isinstance(field, UUIDListField):
        return {"type": "string", "pattern": r"^[0-9a-fA-F-]{36}(,[0-9a-fA-F-]{36})*$"}
    if isinstance(field, serializers.ChoiceField):
        return {"type": "string", "enum": list(field.choices)}
    if isinstance(field, serializers.BooleanField):
        return {"type": "boolean"}
    if isinstance(field, serializers.IntegerField):
        schema: dict[str, Any] = {"type": "integer"}
        if field.min_value is not None:
            schema["minimum"] = field.min_value
        if field.max_value is not None:
            schema["maximum"] = field.max_value
        return schema
    schema = {"type": "string"}
    max_length = getattr(field, "max_length", None)
    if max_length:
        schema["maxLength"] = max_length
    return schema


def query_parameters(serializer_class: type[serializers.Serializer]) -> list[OpenApiParameter]:
    """``OpenApiParameter``s for a query-parameter serializer, with its defaults and help."""
    parameters = []
    for name, field in serializer_class().fields.items():
        schema = _field_schema(field)
        default = field.default
        if default is not empty and not callable(default):
            schema["default"] = default
        parameters.append(
            OpenApiParameter(
                name=name,
                type=schema,
                location=OpenApiParameter.QUERY,
                required=False,
                description=str(field.help_text or ""),
            )
        )
    return parameters
