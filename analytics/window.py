"""The request window every GET data endpoint shares (``start_time``, ``end_time``,
``project_ids``, ``model_ids``, ``endpoint_ids``, with their defaults), how a query string
becomes serializer input, and how such query serializers are documented in OpenAPI.

Geography, blocking statistics, top routes and client analytics build on this module, so
none of them depends on another endpoint's package."""

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
    StrictQueryMixin,
    UUIDListField,
    validate_time_range,
)

DEFAULT_WINDOW = timedelta(days=7)
LIST_PARAMS = ("project_ids", "model_ids", "endpoint_ids")


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
    """The time window and scope every GET data endpoint takes. Unknown parameters are a
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
