"""Validation for ``POST /gateway/analytics`` (the seed's request shape). Everything a
client can get wrong is a 400 naming the field and listing what is allowed."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from analytics.fields import (
    MAX_LIST_ITEMS,
    FlexibleDateTimeField,
    JsonBooleanField,
    JsonListField,
    StrictChoiceField,
    StrictFieldsMixin,
    TimezoneField,
    UUIDListField,
    WholeNumberField,
    choice_error,
    json_text,
    json_type,
    parse_boolean,
    parse_whole_number,
    unknown_names_error,
    validate_time_range,
)
from analytics.query import (
    FilterLeaf,
    FilterNode,
    auto_bucket,
    bucket_count,
    finest_fitting_bucket,
)
from analytics.query.regex import regex_problem
from analytics.query.registry import (
    BUCKETS,
    DEFAULT_METRICS,
    DIMENSIONS,
    MAX_FILTER_DEPTH,
    METRICS,
    TAG_DIMENSION_FORM,
    TAG_KEY_PATTERN,
    TAG_PREFIX,
)
from analytics.query.registry import (
    dimension as registry_dimension,
)

_BOOLEAN_OPS = ("and", "or", "not")
MAX_STRING_VALUE = 1000


class MetricField(StrictChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=list(METRICS), **kwargs)
        self.error_messages.update(choice_error("metric"))


def tag_key_error(name: str) -> str | None:
    """Why a ``tag:<key>`` name is refused, or None when it is not one or is valid."""
    if not name.startswith(TAG_PREFIX):
        return None
    try:
        registry_dimension(name)
    except KeyError:
        return (
            f"{json_text(name, 80)} is not a valid tag dimension: the key after 'tag:' must "
            f"match {TAG_KEY_PATTERN} (a letter or _, then up to 63 letters, digits, _ . -)."
        )
    return None


def dimension_names_allowed() -> str:
    return ", ".join([*DIMENSIONS, TAG_DIMENSION_FORM])


@extend_schema_field(
    {
        "type": "string",
        "anyOf": [
            {"$ref": "#/components/schemas/AnalyticsDimensionEnum"},
            {"pattern": "^tag:" + TAG_KEY_PATTERN.removeprefix("^")},
        ],
        "description": "A registry dimension, or tag:<key> for a caller-supplied tag.",
    }
)
class DimensionField(StrictChoiceField):
    """A registry dimension name or ``tag:<key>`` (any tag key matching the pattern)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=list(DIMENSIONS), **kwargs)
        self.error_messages.update(choice_error("dimension"))

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str) and data.startswith(TAG_PREFIX):
            problem = tag_key_error(data)
            if problem:
                raise serializers.ValidationError(problem)
            return data
        if isinstance(data, str) and data in self.choice_strings_to_values:
            return data
        self.fail("invalid_choice", input=json_text(data, 60), allowed=dimension_names_allowed())
        return None  # unreachable: fail() raises


def _scalar(dimension: str, value: Any, path: str) -> Any:
    """Check one filter value against its dimension's type; returns the bound value."""
    spec = registry_dimension(dimension)
    if spec.type == "uuid":
        try:
            return str(uuid.UUID(value)) if isinstance(value, str) else _bad(path, value, "a UUID")
        except ValueError:
            return _bad(path, value, "a UUID")
    if spec.type == "integer":
        number = parse_whole_number(value)
        if number is None:
            return _bad(path, value, 'a whole number (such as 5 or "5")')
        if not -(2**63) <= number < 2**63:
            return _bad(path, value, "a whole number within 64 bits")
        return number
    if spec.type == "boolean":
        flag = parse_boolean(value)
        if flag is None:
            return _bad(path, value, 'true or false (or "true"/"false")')
        return flag
    if spec.type == "enum":
        if not isinstance(value, str) or value not in spec.values:
            return _bad(path, value, f"one of {', '.join(spec.values)}")
        return value
    if not isinstance(value, str):
        return _bad(path, value, "a string")
    if len(value) > MAX_STRING_VALUE:
        return _bad(path, value[:40] + "…", f"at most {MAX_STRING_VALUE} characters")
    return value


def _bad(path: str, value: Any, expected: str = "a valid value") -> Any:
    raise serializers.ValidationError({path: [f"{json_text(value)} is not {expected}."]})


def _leaf(dimension: str, spec: Any, path: str) -> FilterLeaf:
    problem = tag_key_error(dimension)
    if problem:
        raise serializers.ValidationError({path: [problem]})
    try:
        registry_dimension(dimension)
    except KeyError:
        message = unknown_names_error([dimension], DIMENSIONS, "filter key")
        raise serializers.ValidationError(
            {
                path: [
                    f"{text.rstrip('.')}, {TAG_DIMENSION_FORM} (and the operators and, or, not)."
                    for text in message.popitem()[1]
                ]
            }
        ) from None
    entry = registry_dimension(dimension)
    kind, allowed = entry.type, entry.operators
    if isinstance(spec, dict):
        unknown = unknown_names_error(set(spec) - {"op", "value"}, ("op", "value"), "key")
        if unknown:
            raise serializers.ValidationError(
                {f"{path}.{key}": messages for key, messages in unknown.items()}
            )
        for key in ("op", "value"):
            if key not in spec:
                raise serializers.ValidationError(
                    {
                        f"{path}.{key}": [
                            f'{key} is required: the operator form is {{"op": ..., "value": ...}}.'
                        ]
                    }
                )
        op = spec["op"]
        if not isinstance(op, str) or op not in allowed:
            raise serializers.ValidationError(
                {
                    path: [
                        f"Operator {json_text(op, 30)} does not apply to {kind} dimension "
                        f"'{dimension}'; allowed: {', '.join(allowed)}."
                    ]
                }
            )
        value = spec["value"]
    elif isinstance(spec, list):
        op, value = "in", spec
    else:
        op, value = "eq", spec

    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise serializers.ValidationError(
                {path: [f"Must be a non-empty list, got {json_text(value, 40)}."]}
            )
        if len(value) > MAX_LIST_ITEMS:
            raise serializers.ValidationError(
                {path: [f"At most {MAX_LIST_ITEMS} values are allowed, got {len(value)}."]}
            )
        return FilterLeaf(dimension, op, tuple(_scalar(dimension, v, path) for v in value))
    if op == "is_empty":
        flag = parse_boolean(value)
        if flag is None:
            raise serializers.ValidationError(
                {path: [f"is_empty takes true or false, got {json_text(value, 40)}."]}
            )
        return FilterLeaf(dimension, op, flag)
    if op in ("contains", "starts_with", "regex"):
        if not isinstance(value, str) or not value:
            raise serializers.ValidationError(
                {path: [f"Must be a non-empty string, got {json_text(value, 40)}."]}
            )
        if len(value) > MAX_STRING_VALUE:
            raise serializers.ValidationError({path: [f"At most {MAX_STRING_VALUE} characters."]})
        if op == "regex":
            _check_regex(value, path)
        return FilterLeaf(dimension, op, value)
    return FilterLeaf(dimension, op, _scalar(dimension, value, path))


def _check_regex(pattern: str, path: str) -> None:
    """Refuse what ClickHouse's RE2 would refuse (a 500 otherwise) or read differently."""
    problem = regex_problem(pattern)
    if problem is not None:
        raise serializers.ValidationError({path: [f"Not a valid regular expression: {problem}."]})


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def parse_filters(data: Any, path: str = "", depth: int = 0) -> FilterNode | None:
    """``{"dim": value | [values] | {"op", "value"}, "and": [...], "or": [...], "not": {...}}``
    → a FilterNode of AND-ed parts."""
    if data is None:
        return None
    if depth > MAX_FILTER_DEPTH:
        raise serializers.ValidationError(
            {path or "non_field_errors": [f"Filters nest at most {MAX_FILTER_DEPTH} levels deep."]}
        )
    if not isinstance(data, dict):
        raise serializers.ValidationError(
            {path or "non_field_errors": [f"Must be an object, got {json_type(data)}."]}
        )
    children: list[FilterLeaf | FilterNode] = []
    for key, spec in data.items():
        child_path = _join(path, str(key)[:60])
        if key in ("and", "or"):
            if not isinstance(spec, list) or not spec:
                raise serializers.ValidationError(
                    {child_path: [f"Must be a non-empty list, got {json_text(spec, 40)}."]}
                )
            if len(spec) > 100:
                raise serializers.ValidationError({child_path: ["At most 100 items."]})
            parts = []
            for i, item in enumerate(spec):
                node = parse_filters(item, f"{child_path}[{i}]", depth + 1)
                if node is not None:
                    parts.append(node)
            children.append(FilterNode(key, tuple(parts)))
        elif key == "not":
            node = parse_filters(spec, child_path, depth + 1)
            if node is None:
                raise serializers.ValidationError({child_path: ["Must be an object."]})
            children.append(FilterNode("not", (node,)))
        else:
            children.append(_leaf(str(key), spec, child_path))
    return FilterNode("and", tuple(children))


class AnalyticsRequestSerializer(StrictFieldsMixin, serializers.Serializer):
    project_ids = UUIDListField(help_text="Projects to include (default: all you may read).")
    model_ids = UUIDListField(help_text="Only these models.")
    endpoint_ids = UUIDListField(help_text="Only these endpoints.")
    start_time = FlexibleDateTimeField(help_text="Inclusive start, ISO 8601.")
    end_time = FlexibleDateTimeField(help_text="Exclusive end, ISO 8601.")
    time_bucket = StrictChoiceField(
        choices=[*BUCKETS, "auto"],
        required=False,
        help_text="Bucket width, or auto.",
        error_messages=choice_error("time_bucket"),
    )
    metrics = JsonListField(
        child=MetricField(), required=False, allow_empty=False, max_length=len(METRICS)
    )
    group_by = JsonListField(child=DimensionField(), required=False, max_length=5, default=list)
    filters = serializers.JSONField(required=False, allow_null=True, default=None)
    timezone = TimezoneField()
    fill_gaps = JsonBooleanField(required=False, default=True)
    top_n = WholeNumberField(
        required=False, allow_null=True, min_value=1, max_value=1000, default=None
    )
    order_by = MetricField(required=False, allow_null=True, default=None)
    include_other = JsonBooleanField(required=False, default=False)
    compare_previous = JsonBooleanField(required=False, default=False)
    exact = JsonBooleanField(
        required=False,
        default=False,
        help_text="true: answer from raw rows only, never from a rollup (slower; exact "
        "percentiles and distinct counts). meta.source says which storage answered.",
    )

    def validate_group_by(self, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Each dimension may appear once.")
        return value

    def validate_metrics(self, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    def validate_filters(self, value: Any) -> FilterNode | None:
        return parse_filters(value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start, end = attrs["start_time"], attrs["end_time"]
        validate_time_range(start, end)
        attrs.setdefault("metrics", list(DEFAULT_METRICS))
        warnings: list[str] = []
        bucket = attrs.get("time_bucket") or settings.DEFAULT_TIME_BUCKET
        if bucket == "auto":
            bucket = auto_bucket(start, end)
            warnings.append(f"time_bucket auto resolved to {bucket}.")
        points = bucket_count(start, end, bucket)
        if points > settings.MAX_RESULT_SIZE:
            fits = finest_fitting_bucket(start, end, 1)
            raise serializers.ValidationError(
                {
                    "time_bucket": [
                        f"'{bucket}' gives {points} buckets, more than "
                        f"MAX_RESULT_SIZE ({settings.MAX_RESULT_SIZE}); "
                        f"'{fits}' would fit."
                    ]
                }
            )
        attrs["time_bucket"] = bucket
        if attrs.get("top_n") and not attrs.get("group_by"):
            raise serializers.ValidationError({"top_n": ["top_n needs at least one group_by."]})
        if attrs.get("include_other") and not attrs.get("top_n"):
            raise serializers.ValidationError({"include_other": ["include_other needs top_n."]})
        if attrs.get("order_by") and not attrs.get("top_n"):
            raise serializers.ValidationError({"order_by": ["order_by applies with top_n."]})
        attrs["warnings"] = warnings
        return attrs


def pop_project_filter(data: Any) -> Any:
    """BudApp may send the project scope as ``filters.project_id`` instead of
    ``project_ids``; move a top-level equality/list form there (the scope check then
    applies to it). Anything else stays a normal filter, AND-ed with the scope."""
    if not isinstance(data, dict):
        return data
    filters = data.get("filters")
    if not isinstance(filters, dict) or "project_id" not in filters or data.get("project_ids"):
        return data
    value = filters["project_id"]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        return data  # an empty list is no scope: the filter's own validation refuses it
    rest = {k: v for k, v in filters.items() if k != "project_id"}
    return {**data, "project_ids": value, "filters": rest or None}
