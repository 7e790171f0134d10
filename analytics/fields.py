"""Request fields shared by every endpoint, in the shapes BudApp sends, and the strict-input
rules every input serializer follows: unknown keys are a 400 with a suggestion, numbers
and booleans have one spelling rule (a JSON value or its canonical string), and
messages quote values as JSON (``null``, ``true``), never as Python."""

from __future__ import annotations

import difflib
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, available_timezones

from django.conf import settings
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.settings import api_settings

from analytics.query.buckets import format_time

MAX_LIST_ITEMS = 1000
# Longest integer string accepted: 20 characters hold every signed 64-bit value.
_WHOLE_NUMBER = re.compile(r"-?[0-9]{1,20}")
_TIMEZONES = frozenset(available_timezones())


# --- Messages in JSON's words -----------------------------------------------------------------


def json_text(value: Any, limit: int = 80) -> str:
    """How a client wrote ``value``, in JSON (``null``, ``true``, ``"x"``), cut to ``limit``
    characters: error messages must not speak Python (``None``, ``True``, ``'x'``)."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = json.dumps(str(value), ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "…"


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type (object, list, string, number, boolean, null)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    return "list"


# --- One rule for numbers and booleans ---------------------------------------------------------


def parse_whole_number(value: Any) -> int | None:
    """A whole number as a client may send it: a JSON integer or its decimal string
    (``5``, ``"5"``, ``"-3"``); ``None`` for anything else (``true``, ``5.5``, ``5.0``,
    ``"5.0"``, ``" 5"``). Query strings are strings by nature, so every integer field and
    every integer filter value takes the same two spellings."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _WHOLE_NUMBER.fullmatch(value):
        return int(value)
    return None


def parse_boolean(value: Any) -> bool | None:
    """``true``/``false``, or the strings ``"true"``/``"false"`` in any case; ``None`` for
    anything else (``1``, ``"yes"``, ``null``)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


class WholeNumberField(serializers.IntegerField):
    """An integer field that follows :func:`parse_whole_number` (DRF's own also takes
    ``5.0``, ``"5.000"`` and ``" 5 "``)."""

    default_error_messages = {
        "invalid": 'Must be a whole number (such as 5 or "5"), got {value}.',
    }

    def to_internal_value(self, data: Any) -> int:
        number = parse_whole_number(data)
        if number is None:
            self.fail("invalid", value=json_text(data))
        return number


class JsonBooleanField(serializers.BooleanField):
    """A boolean field that follows :func:`parse_boolean` (DRF's own also takes ``1``,
    ``"yes"``, ``"on"``)."""

    default_error_messages = {
        "invalid": 'Must be true or false (or "true"/"false"), got {value}.',
    }

    def to_internal_value(self, data: Any) -> bool:
        flag = parse_boolean(data)
        if flag is None:
            self.fail("invalid", value=json_text(data))
        return flag


class StrictCharField(serializers.CharField):
    """A string field that takes only strings (DRF's own turns ``5`` into ``"5"``)."""

    default_error_messages = {"invalid": "Must be a string, got {value}."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid", value=json_text(data))
        return super().to_internal_value(data)


class StrictChoiceField(serializers.ChoiceField):
    """A choice of strings whose error lists what is allowed and shows the input as JSON
    (DRF's own matches ``str(input)``, so ``true`` would be compared as ``"True"``)."""

    default_error_messages = {"invalid_choice": "{input} is not allowed; allowed: {allowed}."}

    def to_internal_value(self, data: Any) -> Any:
        if data == "" and self.allow_blank:
            return ""
        if isinstance(data, str) and data in self.choice_strings_to_values:
            return self.choice_strings_to_values[data]
        self.fail(
            "invalid_choice",
            input=json_text(data, 60),
            allowed=", ".join(self.choice_strings_to_values),
        )
        return None  # unreachable: fail() raises


def choice_error(name: str) -> dict[str, str]:
    """``error_messages`` for a StrictChoiceField that names the parameter."""
    return {"invalid_choice": f"{{input}} is not a valid {name}; allowed: {{allowed}}."}


class StrictUUIDField(serializers.UUIDField):
    """A UUID given as a string (DRF's own also reads a number as ``UUID(int=…)``)."""

    default_error_messages = {"invalid": "Must be a UUID string, got {value}."}

    def to_internal_value(self, data: Any) -> uuid.UUID:
        if isinstance(data, uuid.UUID):
            return data
        if not isinstance(data, str):
            self.fail("invalid", value=json_text(data))
        try:
            return uuid.UUID(data)
        except ValueError:
            self.fail("invalid", value=json_text(data))
        return uuid.UUID(int=0)  # unreachable: fail() raises


class JsonListField(serializers.ListField):
    """A list field whose type error names JSON types (DRF's says ``got type "str"``)."""

    default_error_messages = {"not_a_list": "Must be a list, got {input_type}."}

    def to_internal_value(self, data: Any) -> list[Any]:
        if not isinstance(data, list | tuple):
            self.fail("not_a_list", input_type=json_type(data))
        return super().to_internal_value(data)


class TimezoneField(StrictCharField):
    """An IANA time zone name (default UTC): analytics and blocking-stats buckets follow it."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("default", "UTC")
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault(
            "help_text", "IANA time zone of the buckets, e.g. Europe/Berlin (default UTC)."
        )
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if value not in _TIMEZONES:
            raise serializers.ValidationError(
                f"{json_text(value, 70)} is not an IANA time zone name (for example UTC, "
                "Europe/Berlin, America/New_York)."
            )
        ZoneInfo(value)
        return value


# --- Unknown fields and parameters -------------------------------------------------------------


def unknown_names_error(
    names: Iterable[Any], allowed: Iterable[str], kind: str = "field"
) -> dict[str, list[str]]:
    """``{name: [message]}`` for each name not in ``allowed`` (at most 10): the message
    lists what is allowed and, for a near miss, suggests the closest name
    (``project_id`` → did you mean project_ids?)."""
    allowed = list(allowed)
    errors: dict[str, list[str]] = {}
    for name in sorted({str(n) for n in names} - set(allowed))[:10]:
        shown = name[:60]
        close = difflib.get_close_matches(name.rstrip("[]"), allowed, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        errors[shown] = [f"Unknown {kind} {json_text(shown)}{hint}; allowed: {', '.join(allowed)}."]
    return errors


_STRICT_EQUIVALENTS: dict[type, type] = {
    serializers.IntegerField: WholeNumberField,
    serializers.BooleanField: JsonBooleanField,
    serializers.CharField: StrictCharField,
    serializers.ChoiceField: StrictChoiceField,
    serializers.UUIDField: StrictUUIDField,
    serializers.ListField: JsonListField,
}


def _strict(field: serializers.Field) -> serializers.Field:
    """The strict equivalent of one of DRF's lax field classes, built with the same
    arguments (as DRF itself copies fields); other fields unchanged."""
    equivalent = _STRICT_EQUIVALENTS.get(type(field))
    if equivalent is None:
        return field
    return equivalent(*field._args, **field._kwargs)


class StrictFieldsMixin:
    """For input serializers: the data must be an object whose keys are all declared
    fields (read-only ones are accepted and ignored, so an object read can be sent back);
    anything else is a 400 naming the key, listing what is allowed and suggesting the
    closest name. DRF's lax field classes are swapped for the strict ones above, so
    numbers, booleans and strings follow one rule in every field."""

    unknown_kind: ClassVar[str] = "field"
    extra_names: ClassVar[tuple[str, ...]] = ()

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()  # type: ignore[misc]
        return {name: _strict(field) for name, field in fields.items()}

    def allowed_names(self) -> list[str]:
        """The names a client may send: writable fields, then the extras."""
        fields = self.fields  # type: ignore[attr-defined]
        return [n for n, f in fields.items() if not f.read_only] + list(self.extra_names)

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, Mapping):
            raise serializers.ValidationError(
                {
                    api_settings.NON_FIELD_ERRORS_KEY: [
                        f"Must be a JSON object, got {json_type(data)}."
                    ]
                }
            )
        known = set(self.allowed_names()) | set(self.fields)  # type: ignore[attr-defined]
        unknown = [key for key in data if key not in known]
        if unknown:
            raise serializers.ValidationError(
                unknown_names_error(unknown, self.allowed_names(), self.unknown_kind)
            )
        return super().to_internal_value(data)  # type: ignore[misc]


class StrictQueryMixin(StrictFieldsMixin):
    """:class:`StrictFieldsMixin` for query strings: DRF's ``format`` is allowed too."""

    unknown_kind = "parameter"
    extra_names = (api_settings.URL_FORMAT_OVERRIDE or "format",)


class StrictModelSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    """A ModelSerializer for request bodies with the strict rules above. What it saves goes
    to Postgres, whose text and jsonb cannot hold NUL: a NUL anywhere in a value (JSON
    fields included, keys too) is a 400 naming the field, never a DataError."""

    def to_internal_value(self, data: Any) -> Any:
        values = super().to_internal_value(data)
        errors = {
            name: ["May not contain the NUL character (\\u0000)."]
            for name, value in values.items()
            if _holds_nul(value)
        }
        if errors:
            raise serializers.ValidationError(errors)
        return values


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_holds_nul(v) for v in value)
    return False


@extend_schema_field(OpenApiTypes.DATETIME)
class FlexibleDateTimeField(serializers.Field):
    """ISO 8601 with ``Z``, with an offset, or naive (meaning UTC, as Python's
    ``isoformat()`` gives); always returns an aware UTC datetime."""

    default_error_messages = {
        "invalid": "Must be an ISO 8601 timestamp such as 2024-01-31T23:59:59Z, got {value}.",
    }

    def to_internal_value(self, data: Any) -> datetime:
        if isinstance(data, datetime):
            value = data
        else:
            if not isinstance(data, str):
                self.fail("invalid", value=json_text(data, 64))
            text = data.strip()
            if len(text) > 64:
                self.fail("invalid", value=json_text(text, 64))
            # '+' in a query string arrives as a space when the client did not encode it.
            if len(text) > 19 and text[19:20] != "+" and " " in text[19:]:
                text = text[:19] + text[19:].replace(" ", "+")
            try:
                value = parse_datetime(text)
            except ValueError:
                value = None
            if value is None:
                self.fail("invalid", value=json_text(text, 64))
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if not datetime(1970, 1, 1, tzinfo=UTC) <= value <= datetime(2105, 12, 31, tzinfo=UTC):
            raise serializers.ValidationError("Must be between 1970-01-01 and 2105-12-31.")
        return value.astimezone(UTC)

    def to_representation(self, value: datetime) -> str:
        return format_time(value)


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
        "invalid": "Must be a list of UUIDs (or comma-separated UUIDs); {value} is not a UUID.",
        "type": "Must be a list of UUIDs or a comma-separated string, got {type}.",
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
            self.fail("type", type=json_type(data))
        if len(items) > MAX_LIST_ITEMS:
            self.fail("too_long", max=MAX_LIST_ITEMS, count=len(items))
        result = []
        for item in items:
            if not isinstance(item, str | uuid.UUID):
                self.fail("invalid", value=json_text(item, 64))
            try:
                result.append(uuid.UUID(str(item)))
            except ValueError:
                self.fail("invalid", value=json_text(item, 64))
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


class StorageMetaSerializer(serializers.Serializer):
    """Where an answer came from: the storage the planner chose for its queries."""

    source = serializers.CharField(
        help_text='"raw" (the gateway_analytics table), a rollup name (see GET '
        '/gateway/analytics/schema), or several joined by "+" when the answer\'s queries '
        "read different storages."
    )
    approximate = serializers.DictField(
        child=serializers.CharField(),
        help_text="Values taken from a sketch, with their error bound; {} when all are exact.",
    )
