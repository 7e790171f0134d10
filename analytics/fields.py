"""Request fields shared by every data endpoint, in the shapes BudApp sends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

MAX_LIST_ITEMS = 1000


@extend_schema_field(OpenApiTypes.DATETIME)
class FlexibleDateTimeField(serializers.Field):
    """ISO 8601 with ``Z``, with an offset, or naive (meaning UTC, as Python's
    ``isoformat()`` gives); always returns an aware UTC datetime."""

    default_error_messages = {
        "invalid": "Must be an ISO 8601 timestamp such as 2024-01-31T23:59:59Z, got {value!r}.",
    }

    def to_internal_value(self, data: Any) -> datetime:
        if isinstance(data, datetime):
            value = data
        else:
            text = str(data).strip()
            if len(text) > 64:
                self.fail("invalid", value=text[:64] + "…")
            # '+' in a query string arrives as a space when the client did not encode it.
            if len(text) > 19 and text[19:20] != "+" and " " in text[19:]:
                text = text[:19] + text[19:].replace(" ", "+")
            try:
                value = parse_datetime(text)
            except ValueError:
                value = None
            if value is None:
                self.fail("invalid", value=text)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if not datetime(1970, 1, 1, tzinfo=UTC) <= value <= datetime(2105, 12, 31, tzinfo=UTC):
            raise serializers.ValidationError("Must be between 1970-01-01 and 2105-12-31.")
        return value.astimezone(UTC)

    def to_representation(self, value: datetime) -> str:
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@extend_schema_field(
    {
        "oneOf": [
            {"type": "array", "items": {"type": "string", "format": "uuid"}},
            {"type": "string", "description": "Comma-separated UUIDs."},
        ]
    }
)
class UUIDListField(serializers.Field):
    """A list of UUIDs, as a JSON list or as one comma-separated string (GET queries)."""

    default_error_messages = {
        "invalid": "Must be a list of UUIDs (or comma-separated UUIDs); {value!r} is not a UUID.",
        "type": "Must be a list of UUIDs or a comma-separated string.",
        "too_long": "At most {max} items are allowed, got {count}.",
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("default", list)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> list[uuid.UUID]:
        if data is None:
            return []
        if isinstance(data, str):
            items = [part.strip() for part in data.split(",") if part.strip()]
        elif isinstance(data, list | tuple):
            items = list(data)
        else:
            self.fail("type")
        if len(items) > MAX_LIST_ITEMS:
            self.fail("too_long", max=MAX_LIST_ITEMS, count=len(items))
        result = []
        for item in items:
            if not isinstance(item, str | uuid.UUID):
                self.fail("invalid", value=str(item)[:64])
            try:
                result.append(uuid.UUID(str(item)))
            except ValueError:
                self.fail("invalid", value=str(item)[:64])
        return sorted(set(result), key=str)

    def to_representation(self, value: list[uuid.UUID]) -> list[str]:
        return [str(v) for v in value]


def validate_time_range(start: datetime, end: datetime) -> None:
    """The range rules every data endpoint shares: ``end_time`` after ``start_time``, and
    at most ``MAX_QUERY_TIME_RANGE`` days."""
    if end <= start:
        raise serializers.ValidationError({"end_time": ["Must be after start_time."]})
    max_days = settings.MAX_QUERY_TIME_RANGE
    if end - start > timedelta(days=max_days):
        raise serializers.ValidationError(
            {"end_time": [f"The range may span at most {max_days} days (MAX_QUERY_TIME_RANGE)."]}
        )
