"""The registry of metrics and dimensions over ``gateway_analytics``.

One entry per name: SQL expression, type, unit, description. The query builder, request
validation, error messages, the OpenAPI enums and ``GET /gateway/analytics/schema`` are all
generated from here, so adding a metric is one entry (plus its test). User input never
names a column or function directly: it names a registry entry.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
    # Counts and sums are 0 over no rows (an empty bucket shows 0); averages, rates, ratios
    # and percentiles are null there. Said per metric, never guessed from the SQL text.
    additive: bool = False
    # Derived metrics are computed in Python from other columns of the same row
    # (requests_per_second needs the bucket's width, which SQL does not know).
    derived_from: str | None = None


@dataclass(frozen=True)
class Dimension:
    name: str
    sql: str  # expression over gateway_analytics rows
    type: str  # "uuid" | "string" | "integer" | "boolean" | "enum"
    description: str
    empty: str | None = None  # the stored value meaning "unknown", rendered as null
    values: tuple[str, ...] = ()  # allowed values for enum dimensions
    # Bound parameters ``sql`` names (a tag key): code-named, one name per value.
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def operators(self) -> tuple[str, ...]:
        """Filter operators: the type's, plus ``is_empty`` for an enum that can be unset."""
        ops = OPERATORS[self.type]
        if self.empty is not None and "is_empty" not in ops:
            ops = (*ops, "is_empty")
        return ops

    @property
    def bound(self) -> Mapping[str, Any]:
        return dict(self.params)


ROUTING_DECISIONS = ("primary", "fallback", "cached", "retry")
FINISH_REASONS = ("stop", "length", "tool_call", "content_filter", "error", "unknown")


def _rate(numerator: str) -> str:
    return f"if(count() = 0, NULL, ({numerator}) / count())"


def _share(condition: str, recorded: str) -> str:
    """Rows matching ``condition`` among rows where the field was recorded (absent rows are
    left out, not counted as "no"); NULL when no row recorded it."""
    return f"if(countIf({recorded}) = 0, NULL, countIf({condition}) / countIf({recorded}))"


# A row has a time to first token only when it was streamed and the gateway measured one.
HAS_TTFT = "is_streaming AND ttft_ms > 0"
# ...and a generation time after it only when the response ended after the first token.
HAS_GENERATION = f"{HAS_TTFT} AND response_time_ms > ttft_ms"


def _ttft_percentile(level: str, name: str, what: str) -> Metric:
    return Metric(
        name,
        f"quantileExactOrNullIf({level})(ttft_ms, {HAS_TTFT})",
        "integer",
        "ms",
        f"{what} time to first token over streamed requests that recorded one: the value at "
        f"index floor({level}·n) of their sorted times; null when there are none.",
    )


_METRICS = (
    Metric(
        "total_requests", "count()", "integer", "requests", "Number of requests.", additive=True
    ),
    Metric(
        "error_count",
        "countIf(status_code >= 400)",
        "integer",
        "requests",
        "Requests answered with HTTP status 400 or above.",
        additive=True,
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
        additive=True,
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
        additive=True,
    ),
    Metric(
        "input_tokens",
        "sum(toUInt64(input_tokens))",
        "integer",
        "tokens",
        "Prompt tokens.",
        additive=True,
    ),
    Metric(
        "output_tokens",
        "sum(toUInt64(output_tokens))",
        "integer",
        "tokens",
        "Completion tokens.",
        additive=True,
    ),
    Metric(
        "avg_tokens_per_request",
        "avgOrNull(total_tokens)",
        "float",
        "tokens",
        "Mean total_tokens per request.",
    ),
    Metric("total_cost", "sum(cost)", "float", "USD", "Sum of request cost.", additive=True),
    Metric(
        "unique_users",
        "uniqExactIf(client_id, client_id != '')",
        "integer",
        "clients",
        "Distinct non-empty client_id values (API keys).",
        additive=True,
    ),
    Metric(
        "unique_ips",
        "uniqExactIf(client_ip, client_ip != '')",
        "integer",
        "addresses",
        "Distinct non-empty client IP addresses.",
        additive=True,
    ),
    Metric(
        "bot_requests",
        "countIf(is_bot)",
        "integer",
        "requests",
        "Requests whose user agent is a known bot.",
        additive=True,
    ),
    Metric(
        "requests_per_second",
        "count()",
        "float",
        "requests/s",
        "total_requests divided by the bucket's width in seconds (in summary: by the whole range).",
        derived_from="total_requests",
    ),
    # --- LLM gateway: streaming, routing, caching, finish reasons (issue 14) -------------
    # Fields a row did not record read their "absent" default ('' / 0 / false) and are left
    # out of every mean, rate and percentile below, never counted as zero.
    Metric(
        "avg_ttft",
        f"avgOrNullIf(ttft_ms, {HAS_TTFT})",
        "float",
        "ms",
        "Mean time to first token over streamed requests that recorded one; null when none.",
    ),
    _ttft_percentile("0.5", "p50_ttft", "Exact median"),
    _ttft_percentile("0.95", "p95_ttft", "Exact 95th percentile"),
    _ttft_percentile("0.99", "p99_ttft", "Exact 99th percentile"),
    Metric(
        "output_tokens_per_second",
        f"if(sumIf(toInt64(response_time_ms) - toInt64(ttft_ms), {HAS_GENERATION}) = 0, NULL,"
        f" sumIf(toUInt64(output_tokens), {HAS_GENERATION})"
        f" / (sumIf(toInt64(response_time_ms) - toInt64(ttft_ms), {HAS_GENERATION}) / 1000))",
        "float",
        "tokens/s",
        "Output tokens / generation seconds after the first token, summed over streamed "
        "requests with a first token before the end (a ratio of sums, never a mean of "
        "per-request rates); null when there is no such time.",
    ),
    Metric(
        "fallback_rate",
        _share("routing_decision = 'fallback'", "routing_decision != ''"),
        "float",
        "fraction",
        "Requests routed to a fallback provider / requests with a recorded routing_decision, 0..1.",
    ),
    Metric(
        "rescued_requests",
        "countIf(routing_decision = 'fallback' AND status_code < 400)",
        "integer",
        "requests",
        "Requests that fell back to another provider and still succeeded (status below 400).",
        additive=True,
    ),
    Metric(
        "cache_hit_rate",
        _share("routing_decision = 'cached'", "routing_decision != ''"),
        "float",
        "fraction",
        "Requests answered from the gateway's cache / requests with a recorded "
        "routing_decision, 0..1.",
    ),
    Metric(
        "cached_input_tokens",
        "sum(toUInt64(cached_input_tokens))",
        "integer",
        "tokens",
        "Prompt tokens read from the provider's prompt cache.",
        additive=True,
    ),
    Metric(
        "truncation_rate",
        _share("finish_reason = 'length'", "finish_reason != ''"),
        "float",
        "fraction",
        "Responses cut off by the length limit / responses with a recorded finish_reason, 0..1.",
    ),
    Metric(
        "content_filter_rate",
        _share("finish_reason = 'content_filter'", "finish_reason != ''"),
        "float",
        "fraction",
        "Responses stopped by a content filter / responses with a recorded finish_reason, 0..1.",
    ),
    Metric(
        "cost_per_1k_tokens",
        "if(sum(toUInt64(total_tokens)) = 0, NULL, sum(cost) / sum(toUInt64(total_tokens)) * 1000)",
        "float",
        "USD",
        "total_cost / total_tokens * 1000 (a ratio of sums); null when there are no tokens.",
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
    Dimension(
        "routing_decision",
        "routing_decision",
        "enum",
        "How the gateway routed the request: primary, fallback (another provider after a "
        "failure), cached (answered from the gateway's cache) or retry; null when not recorded.",
        "",
        values=ROUTING_DECISIONS,
    ),
    Dimension(
        "finish_reason",
        "finish_reason",
        "enum",
        "Why the model stopped: stop, length, tool_call, content_filter, error or unknown; "
        "null when not recorded.",
        "",
        values=FINISH_REASONS,
    ),
    Dimension("model_version", "model_version", "string", "Provider's model version.", ""),
    Dimension("is_streaming", "is_streaming", "boolean", "Whether the response was streamed."),
)

DIMENSIONS: dict[str, Dimension] = {d.name: d for d in _DIMENSIONS}
DIMENSION_CHOICES = [d.name for d in _DIMENSIONS]

# `tag:<key>` names a caller-supplied label of the `tags` map as a string dimension. The
# key is checked against this pattern and still bound as a parameter, never spliced in.
TAG_PREFIX = "tag:"
TAG_KEY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"
_TAG_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
TAG_DIMENSION_FORM = "tag:<key>"


def tag_key_valid(key: str) -> bool:
    return _TAG_KEY.fullmatch(key) is not None


def tag_dimension(key: str) -> Dimension:
    """The dimension of one tag key: ``tags[{tag_<hex of key>:String}]``. The parameter
    name is a function of the key alone, so one key used in group_by and in filters binds
    once and two keys never share a name; a key no row has reads '' (null)."""
    if not tag_key_valid(key):
        raise KeyError(f"{TAG_PREFIX}{key}")
    param = f"tag_{key.encode().hex()}"
    return Dimension(
        name=f"{TAG_PREFIX}{key}",
        sql=f"tags[{{{param}:String}}]",
        type="string",
        description=f"Value of the caller-supplied tag {key!r}; null when a request has none.",
        empty="",
        params=((param, key),),
    )


def dimension(name: str) -> Dimension:
    """The one registry lookup for a dimension name, static (``model_name``) or dynamic
    (``tag:team``); validation, printer and shaper all use it. KeyError when unknown."""
    found = DIMENSIONS.get(name)
    if found is not None:
        return found
    if isinstance(name, str) and name.startswith(TAG_PREFIX):
        return tag_dimension(name[len(TAG_PREFIX) :])
    raise KeyError(name)


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

# --- rollups (issue 11): the sketches rollups keep, and their error bounds ---------------
# Percentiles in a rollup come from ClickHouse quantilesTiming over times in 10 ms units
# (exact for small states, a 16-unit histogram above 1024 units in large ones); distinct
# counts from uniqCombined64 (exact while small, then a 2^17-cell HyperLogLog). The bounds
# below are what a rollup answer promises against raw rows; the schema endpoint and
# ``meta.approximate`` state them, the tests check them.
QUANTILE_SKETCH_ABSOLUTE_ERROR_MS = 210
DISTINCT_SKETCH_RELATIVE_ERROR = 0.01
_QUANTILE_BOUND = (
    "within 210 ms of the exact value (index floor(level·n) of the sorted times): times "
    "are kept in 10 ms units (up to 10 ms low), and above 10.24 s a bucket with more than "
    "5,670 values rounds to 16 units; times above 300 s count as 300 s"
)
_DISTINCT_BOUND = (
    "within 1% (relative) of the exact distinct count (uniqCombined64: exact for small "
    "sets, then a 2^17-cell HyperLogLog with a standard error of about 0.3%)"
)
SKETCH_BOUNDS: dict[str, str] = {
    **{
        name: _QUANTILE_BOUND
        for name in (
            "p50_response_time",
            "p90_response_time",
            "p95_response_time",
            "p99_response_time",
            "p50_ttft",
            "p95_ttft",
            "p99_ttft",
        )
    },
    "unique_users": _DISTINCT_BOUND,
    "unique_ips": _DISTINCT_BOUND,
    # Rollup-local measures (per-place / per-path states merged again by the query):
    # the p95 (geographical-stats; top-routes: also p99) response time, top-routes' p95
    # time to first token, geographical-stats' distinct users.
    "response_time_percentiles": _QUANTILE_BOUND,
    "ttft_percentiles": _QUANTILE_BOUND,
    "unique_users_sketch": _DISTINCT_BOUND,
}
