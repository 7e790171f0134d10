"""Validation for ``GET /gateway/requests`` and ``POST /gateway/exports``: the GET window,
the analytics filter grammar (as JSON text in ``filters``), a whitelisted column list, the
order, a page size or export cap, a drill-down bucket, and the signed cursor."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.conf import settings
from rest_framework import serializers

from analytics.fields import (
    FlexibleDateTimeField,
    StrictCharField,
    StrictChoiceField,
    StrictFieldsMixin,
    TimezoneField,
    WholeNumberField,
    choice_error,
    json_text,
    unknown_names_error,
)
from analytics.query.registry import BUCKETS
from analytics.requests_log.cursor import CursorError, decode_cursor, query_hash
from analytics.requests_log.queries import FIELDS, ORDERS, Drill
from analytics.serializers import parse_filters
from analytics.window import WindowQuerySerializer

DEFAULT_LIMIT = 100
MAX_FILTERS_TEXT = 100_000
EXPORT_FORMATS = ("csv", "ndjson")


def parse_fields(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise serializers.ValidationError("Name at least one field.")
    unknown = unknown_names_error([n for n in names if n not in FIELDS], FIELDS, "field")
    if unknown:
        raise serializers.ValidationError([m for messages in unknown.values() for m in messages])
    return list(dict.fromkeys(names))


def parse_filter_text(text: str) -> Any:
    """``filters`` is the analytics body's filter object as JSON text (same grammar)."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise serializers.ValidationError(
            {"filters": [f"Must be a JSON object (the analytics filter grammar): {exc}."]}
        ) from None
    try:
        return parse_filters(value, "filters")
    except serializers.ValidationError as exc:
        raise serializers.ValidationError(exc.detail) from None


class RequestLogQuerySerializer(WindowQuerySerializer):
    """The context carries ``caller`` (cursor binding) and ``export`` (the format asked)."""

    filters = StrictCharField(
        required=False,
        max_length=MAX_FILTERS_TEXT,
        help_text="The analytics filter object as JSON text, e.g. "
        '{"status_code":{"op":"gte","value":500}} (every dimension, operator, and/or/not).',
    )
    fields = StrictCharField(
        required=False,
        max_length=2000,
        help_text=f"Comma-separated columns to return (default all): {', '.join(FIELDS)}.",
    )
    order = StrictChoiceField(
        choices=list(ORDERS),
        required=False,
        default="newest",
        help_text="newest (default) or oldest first; ties broken by request_id.",
        error_messages=choice_error("order"),
    )
    limit = WholeNumberField(
        required=False,
        min_value=1,
        help_text="Rows per page (default 100, at most REQUEST_LOG_MAX_LIMIT, 1000); with "
        "format=csv|ndjson the most rows to export (at most MAX_EXPORT_ROWS).",
    )
    cursor = StrictCharField(
        required=False,
        max_length=4000,
        help_text="The opaque cursor of a `next` link; keep every other parameter as in it.",
    )
    time_bucket = StrictChoiceField(
        choices=list(BUCKETS),
        required=False,
        help_text="With bucket_start: only rows of that analytics bucket (drill-down).",
        error_messages=choice_error("time_bucket"),
    )
    timezone = TimezoneField(help_text="IANA zone of the drill-down bucket (default UTC).")
    bucket_start = FlexibleDateTimeField(
        required=False,
        help_text="A time_series point's timestamp: only the rows of that bucket.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        attrs["filters"] = (
            parse_filter_text(attrs["filters"]) if attrs.get("filters") is not None else None
        )
        attrs["fields"] = (
            _field_list(attrs["fields"]) if attrs.get("fields") is not None else list(FIELDS)
        )
        export = self.context.get("export")
        cap = settings.MAX_EXPORT_ROWS if export else settings.REQUEST_LOG_MAX_LIMIT
        limit = attrs.get("limit")
        if limit is not None and limit > cap:
            name = "MAX_EXPORT_ROWS" if export else "REQUEST_LOG_MAX_LIMIT"
            raise serializers.ValidationError(
                {"limit": [f"Must be at most {cap} ({name}), got {limit}."]}
            )
        attrs["limit"] = limit if limit is not None else (cap if export else DEFAULT_LIMIT)
        attrs["drill"] = _drill(attrs)
        attrs["query_hash"] = query_hash(
            {
                "start_time": attrs["start_time"],
                "end_time": attrs["end_time"],
                "project_ids": sorted(str(p) for p in attrs["project_ids"]),
                "model_ids": sorted(str(m) for m in attrs["model_ids"]),
                "endpoint_ids": sorted(str(e) for e in attrs["endpoint_ids"]),
                "filters": repr(attrs["filters"]),
                "order": attrs["order"],
                "drill": repr(attrs["drill"]),
            }
        )
        attrs["after"] = None
        if attrs.get("cursor"):
            try:
                attrs["after"] = decode_cursor(
                    attrs["cursor"], attrs["query_hash"], str(self.context.get("caller", ""))
                )
            except CursorError as exc:
                raise serializers.ValidationError({"cursor": [str(exc)]}) from None
        return attrs


def _field_list(text: str) -> list[str]:
    try:
        return parse_fields(text)
    except serializers.ValidationError as exc:
        raise serializers.ValidationError({"fields": exc.detail}) from None


def _drill(attrs: dict[str, Any]) -> Drill | None:
    start, bucket = attrs.get("bucket_start"), attrs.get("time_bucket")
    if start is None and bucket is None:
        if attrs.get("timezone", "UTC") != "UTC":
            raise serializers.ValidationError(
                {"timezone": ["timezone applies with time_bucket and bucket_start."]}
            )
        return None
    if start is None or bucket is None:
        missing = "bucket_start" if start is None else "time_bucket"
        raise serializers.ValidationError(
            {missing: [f"{missing} is required: a drill-down names time_bucket and bucket_start."]}
        )
    return Drill(bucket=bucket, timezone=attrs["timezone"], start=start)


class ExportRequestSerializer(StrictFieldsMixin, serializers.Serializer):
    """`POST /gateway/exports`: the request-log query (as its query parameters) and a format."""

    format = StrictChoiceField(choices=list(EXPORT_FORMATS), error_messages=choice_error("format"))
    query = serializers.DictField(
        child=serializers.JSONField(),
        required=False,
        default=dict,
        help_text="The GET /gateway/requests parameters (start_time, filters, fields, …), "
        "as strings or lists; cursor and format are not taken here.",
    )

    def validate_query(self, value: dict[str, Any]) -> dict[str, Any]:
        refused = [key for key in ("cursor", "format") if key in value]
        if refused:
            raise serializers.ValidationError(f"{json_text(refused[0])} is not taken by an export.")
        return value


def export_id(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
