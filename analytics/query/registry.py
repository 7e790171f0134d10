"""The registry of metrics and dimensions over ``gateway_analytics``.

One entry per name: SQL expression, type, unit, description. The query builder, request
validation, error messages, the OpenAPI enums and ``GET /gateway/analytics/schema`` are all
generated from here, so adding a metric is one entry (plus its test). User input never
names a column or function directly: it names a registry entry.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

# The one table every data query reads (a Distributed table of that name in cluster mode).
TABLE = "gateway_analytics"
# The stored "no id" value of UUID columns, shown as null.
ZERO_UUID = uuid.UUID(int=0)


@dataclass(frozen=True)
class Metric:
    name: str
    sql: str  # an aggregate over gateway_analytics rows; NULL (never NaN) when undefined
    type: str  # "integer" | "float"
    unit: str
    description: str
    # Derived metrics are computed in Python from other columns of the same row
    # (requests_per_second needs the bucket's width, which SQL does not know).
    derived_from: str | None = None

    @property
    def additive(self) -> bool:
        """Counts and sums are 0 over no rows; averages, rates and percentiles are null."""
        return self.sql.startswith(("count", "sum", "uniq")) and "/" not in self.sql


@dataclass(frozen=True)
class Dimension:
    name: str
    sql: str  # expression over gateway_analytics rows
    type: str  # "uuid" | "string" | "integer" | "boolean" | "enum"
    description: str
    empty: str | None = None  # the stored value meaning "unknown", rendered as null
    values: tuple[str, ...] = ()  # allowed values for enum dimensions


def _rate(numerator: str) -> str:
    return f"if(count() = 0, NULL, ({numerator}) / count())"


_METRICS = (
    Metric("total_requests", "count()", "integer", "requests", "Number of requests."),
    Metric(
        "error_count",
        "countIf(status_code >= 400)",
        "integer",
        "requests",
        "Requests answered with HTTP status 400 or above.",
    ),
    Metric(
        "error_rate",
        _rate("countIf(status_code >= 400)"),
        "float",
        "fraction",
        "error_count / total_requests, 0..1.",
    ),
    Metric(
        "success_rate",
        _rate("countIf(status_code < 400)"),
        "float",
        "fraction",
        "Requests with status below 400 / total_requests, 0..1.",
    ),
    Metric(
        "blocked_requests",
        "countIf(is_blocked)",
        "integer",
        "requests",
        "Requests blocked by the gateway's blocking rules.",
    ),
    Metric(
        "block_rate",
        _rate("countIf(is_blocked)"),
        "float",
        "fraction",
        "blocked_requests / total_requests, 0..1.",
    ),
    Metric(
        "avg_response_time",
        "avgOrNull(response_time_ms)",
        "float",
        "ms",
        "Mean response time over the rows (a true mean, never a mean of means).",
    ),
    Metric(
        "min_response_time",
        "minOrNull(response_time_ms)",
        "integer",
        "ms",
        "Fastest response time.",
    ),
    Metric(
        "max_response_time",
        "maxOrNull(response_time_ms)",
        "integer",
        "ms",
        "Slowest response time.",
    ),
    Metric(
        "p50_response_time",
        "quantileExactOrNull(0.5)(response_time_ms)",
        "integer",
        "ms",
        "Exact median response time: the value at index floor(0.5·n) of the sorted times.",
    ),
    Metric(
        "p90_response_time",
        "quantileExactOrNull(0.9)(response_time_ms)",
        "integer",
        "ms",
        "Exact 90th percentile: the value at index floor(0.9·n) of the sorted times.",
    ),
    Metric(
        "p95_response_time",
        "quantileExactOrNull(0.95)(response_time_ms)",
        "integer",
        "ms",
        "Exact 95th percentile: the value at index floor(0.95·n) of the sorted times.",
    ),
    Metric(
        "p99_response_time",
        "quantileExactOrNull(0.99)(response_time_ms)",
        "integer",
        "ms",
        "Exact 99th percentile: the value at index floor(0.99·n) of the sorted times.",
    ),
    Metric(
        "avg_gateway_processing_time",
        "avgOrNull(gateway_processing_ms)",
        "float",
        "ms",
        "Mean time the gateway itself spent on a request.",
    ),
    Metric(
        "total_tokens",
        "sum(toUInt64(total_tokens))",
        "integer",
        "tokens",
        "Input plus output tokens.",
    ),
    Metric("input_tokens", "sum(toUInt64(input_tokens))", "integer", "tokens", "Prompt tokens."),
    Metric(
        "output_tokens", "sum(toUInt64(output_tokens))", "integer", "tokens", "Completion tokens."
    ),
    Metric(
        "avg_tokens_per_request",
        "avgOrNull(total_tokens)",
        "float",
        "tokens",
        "Mean total_tokens per request.",
    ),
    Metric("total_cost", "sum(cost)", "float", "USD", "Sum of request cost."),
    Metric(
        "unique_users",
        "uniqExactIf(client_id, client_id != '')",
        "integer",
        "clients",
        "Distinct non-empty client_id values (API keys).",
    ),
    Metric(
        "unique_ips",
        "uniqExactIf(client_ip, client_ip != '')",
        "integer",
        "addresses",
        "Distinct non-empty client IP addresses.",
    ),
    Metric(
        "bot_requests",
        "countIf(is_bot)",
        "integer",
        "requests",
        "Requests whose user agent is a known bot.",
    ),
    Metric(
        "requests_per_second",
        "count()",
        "float",
        "requests/s",
        "total_requests divided by the bucket's width in seconds (in summary: by the whole range).",
        derived_from="total_requests",
    ),
)

METRICS: dict[str, Metric] = {m.name: m for m in _METRICS}
METRIC_CHOICES = [m.name for m in _METRICS]  # named OpenAPI enum (SPECTACULAR_SETTINGS)

_DIMENSIONS = (
    Dimension("project_id", "project_id", "uuid", "Project.", str(ZERO_UUID)),
    Dimension("model_id", "model_id", "uuid", "Model.", str(ZERO_UUID)),
    Dimension("endpoint_id", "endpoint_id", "uuid", "Endpoint (deployment).", str(ZERO_UUID)),
    Dimension("model_name", "model_name", "string", "Model name.", ""),
    Dimension("model_provider", "model_provider", "string", "Model provider.", ""),
    Dimension("client_id", "client_id", "string", "API key id of the caller.", ""),
    Dimension("country_code", "country_code", "string", "ISO 3166-1 alpha-2 country.", ""),
    Dimension("region", "region", "string", "Region or state.", ""),
    Dimension("city", "city", "string", "City.", ""),
    Dimension("device_type", "device_type", "string", "desktop, mobile, tablet, bot or other.", ""),
    Dimension("browser", "browser", "string", "Browser or client library family.", ""),
    Dimension("os", "os", "string", "Operating system family.", ""),
    Dimension("path", "path", "string", "Request path as received.", ""),
    Dimension("method", "method", "string", "HTTP method.", ""),
    Dimension("status_code", "status_code", "integer", "HTTP status code."),
    Dimension(
        "status_class",
        "concat(toString(intDiv(status_code, 100)), 'xx')",
        "enum",
        "HTTP status class.",
        values=("1xx", "2xx", "3xx", "4xx", "5xx"),
    ),
    Dimension("is_blocked", "is_blocked", "boolean", "Whether the request was blocked."),
    Dimension("is_bot", "is_bot", "boolean", "Whether the caller is a known bot."),
    Dimension("block_reason", "block_reason", "string", "Why a request was blocked.", ""),
    Dimension("error_type", "error_type", "string", "Error class reported by the gateway.", ""),
)

DIMENSIONS: dict[str, Dimension] = {d.name: d for d in _DIMENSIONS}
DIMENSION_CHOICES = [d.name for d in _DIMENSIONS]

# Filter operators allowed per dimension type ("eq" is the plain value form).
OPERATORS: dict[str, tuple[str, ...]] = {
    "uuid": ("eq", "ne", "in", "not_in", "is_empty"),
    "string": ("eq", "ne", "in", "not_in", "contains", "starts_with", "regex", "is_empty"),
    "integer": ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte"),
    "boolean": ("eq", "ne"),
    "enum": ("eq", "ne", "in", "not_in"),
}

# ClickHouse parameter type per dimension type, for bound values.
PARAM_TYPES: dict[str, str] = {
    "uuid": "UUID",
    "string": "String",
    "integer": "Int64",
    "boolean": "Bool",
    "enum": "String",
}

# Bucket name → (ClickHouse interval, nominal seconds).
BUCKETS: dict[str, tuple[str, int]] = {
    "1m": ("INTERVAL 1 MINUTE", 60),
    "5m": ("INTERVAL 5 MINUTE", 300),
    "15m": ("INTERVAL 15 MINUTE", 900),
    "30m": ("INTERVAL 30 MINUTE", 1800),
    "1h": ("INTERVAL 1 HOUR", 3600),
    "6h": ("INTERVAL 6 HOUR", 21600),
    "12h": ("INTERVAL 12 HOUR", 43200),
    "1d": ("INTERVAL 1 DAY", 86400),
    "1w": ("INTERVAL 1 WEEK", 604800),
}

DEFAULT_METRICS = ("total_requests", "error_rate", "avg_response_time")

# `auto` picks the finest bucket keeping a series at or under this many points.
AUTO_BUCKET_POINT_BUDGET = 300
# Boolean filter trees may nest and/or/not this deep.
MAX_FILTER_DEPTH = 5
MAX_FILTER_VALUES = 1000
