"""Build, then print: the query builder behind ``POST /gateway/analytics``.

A validated request becomes an ``AnalyticsQuery`` (frozen, whitelisted parts only). One
printer turns it into SQL whose identifiers come from ``analytics.registry`` and whose
values are all bound parameters, starting from the tenant guard in ``analytics.scope``.

Round trips: one table query answers series, per-group totals and the summary together
(``GROUP BY GROUPING SETS``); ``top_n`` adds a ranking query first; ``compare_previous``
adds the previous period's summary; the bucket list for gap filling comes from a
table-less ``numbers()`` query using the very same bucket expression, so gaps are filled
exactly where ClickHouse would put buckets, DST days included.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from rest_framework.exceptions import ValidationError

from analytics.registry import (
    AUTO_BUCKET_POINT_BUDGET,
    BUCKETS,
    DIMENSIONS,
    METRICS,
    PARAM_TYPES,
)
from analytics.scope import Conditions, ProjectScope, base_conditions
from budmetrics_site.clickhouse.query import run_select
from budmetrics_site.errors import QueryTooLarge

TABLE = "gateway_analytics"
OTHER_GROUP = "__other__"
# Every summary carries these, whatever was asked (the seed's summary shape).
SUMMARY_ALWAYS = ("total_requests", "error_count")
# Gap-fill candidates are this far apart at most: every zone offset is a multiple of 15 min.
_FILL_STEP_SECONDS = 900


@dataclass(frozen=True)
class FilterLeaf:
    dimension: str
    op: str
    value: Any


@dataclass(frozen=True)
class FilterNode:
    kind: str  # "and" | "or" | "not"
    children: tuple[FilterLeaf | FilterNode, ...]


@dataclass(frozen=True)
class AnalyticsQuery:
    scope: ProjectScope
    start: datetime
    end: datetime
    bucket: str
    timezone: str
    metrics: tuple[str, ...]
    group_by: tuple[str, ...] = ()
    model_ids: tuple[Any, ...] = ()
    endpoint_ids: tuple[Any, ...] = ()
    filters: FilterLeaf | FilterNode | None = None
    fill_gaps: bool = True
    top_n: int | None = None
    order_by: str | None = None
    include_other: bool = False
    compare_previous: bool = False
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_validated(cls, data: dict[str, Any], scope: ProjectScope) -> AnalyticsQuery:
        """From ``AnalyticsRequestSerializer.validated_data`` and the caller's scope."""
        return cls(
            scope=scope,
            start=data["start_time"],
            end=data["end_time"],
            bucket=data["time_bucket"],
            timezone=data["timezone"],
            metrics=tuple(data["metrics"]),
            group_by=tuple(data["group_by"]),
            model_ids=tuple(data["model_ids"]),
            endpoint_ids=tuple(data["endpoint_ids"]),
            filters=data["filters"],
            fill_gaps=data["fill_gaps"],
            top_n=data["top_n"],
            order_by=data["order_by"],
            include_other=data["include_other"],
            compare_previous=data["compare_previous"],
            warnings=tuple(data["warnings"]),
        )


@dataclass
class Printed:
    sql: str
    params: dict[str, Any] = field(default_factory=dict)


# --- buckets ----------------------------------------------------------------------------


def bucket_count(start: datetime, end: datetime, bucket: str) -> int:
    return max(1, math.ceil((end - start).total_seconds() / BUCKETS[bucket][1]))


def auto_bucket(start: datetime, end: datetime) -> str:
    """The finest bucket keeping the series within AUTO_BUCKET_POINT_BUDGET points."""
    for name in BUCKETS:
        if bucket_count(start, end, name) <= AUTO_BUCKET_POINT_BUDGET:
            return name
    return "1w"


def finest_fitting_bucket(start: datetime, end: datetime, groups: int) -> str | None:
    for name in BUCKETS:
        if bucket_count(start, end, name) * max(groups, 1) <= settings.MAX_RESULT_SIZE:
            return name
    return None


def bucket_sql(bucket: str, column: str = "timestamp") -> str:
    """Bucket start in the request's zone (bound as {tz:String}), so days and hours align
    to local midnight/hour boundaries."""
    if bucket == "1d":
        return f"toStartOfDay({column}, {{tz:String}})"
    if bucket == "1w":
        return f"toDateTime(toMonday({column}, {{tz:String}}), {{tz:String}})"
    return f"toStartOfInterval({column}, {BUCKETS[bucket][0]}, {{tz:String}})"


# --- filters ----------------------------------------------------------------------------


class _Params:
    """Hands out parameter names so values never collide and never touch SQL text."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params
        self.count = 0

    def bind(self, value: Any, ch_type: str) -> str:
        self.count += 1
        name = f"f{self.count}"
        self.params[name] = value
        return f"{{{name}:{ch_type}}}"


def _leaf_sql(leaf: FilterLeaf, binder: _Params) -> str:
    dimension = DIMENSIONS[leaf.dimension]
    column = dimension.sql
    ch_type = PARAM_TYPES[dimension.type]
    op, value = leaf.op, leaf.value
    if op == "is_empty":
        empty = binder.bind(dimension.empty, ch_type)
        return f"{column} = {empty}" if value else f"{column} != {empty}"
    if op in ("in", "not_in"):
        placeholder = binder.bind(list(value), f"Array({ch_type})")
        return f"{column} {'IN' if op == 'in' else 'NOT IN'} {placeholder}"
    if op == "contains":
        return f"position({column}, {binder.bind(value, 'String')}) > 0"
    if op == "starts_with":
        return f"startsWith({column}, {binder.bind(value, 'String')})"
    if op == "regex":
        return f"match({column}, {binder.bind(value, 'String')})"
    comparison = {"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
    return f"{column} {comparison} {binder.bind(value, ch_type)}"


def filter_sql(node: FilterLeaf | FilterNode, binder: _Params) -> str:
    if isinstance(node, FilterLeaf):
        return _leaf_sql(node, binder)
    parts = [filter_sql(child, binder) for child in node.children]
    if node.kind == "not":
        return f"NOT ({parts[0]})"
    if not parts:
        return "1" if node.kind == "and" else "0"
    joiner = " AND " if node.kind == "and" else " OR "
    return "(" + joiner.join(f"({p})" for p in parts) + ")"


def where(
    query: AnalyticsQuery, start: datetime | None = None, end: datetime | None = None
) -> Conditions:
    conditions = base_conditions(
        query.scope,
        start or query.start,
        end or query.end,
        model_ids=query.model_ids,
        endpoint_ids=query.endpoint_ids,
    )
    if query.filters is not None:
        binder = _Params(conditions.params)
        conditions.clauses.append(filter_sql(query.filters, binder))
    return conditions


# --- printers ---------------------------------------------------------------------------


def _sql_metrics(names: Iterable[str]) -> list[str]:
    """Metric names that need an SQL column (derived ones read their source column)."""
    out: list[str] = []
    for name in names:
        source = METRICS[name].derived_from or name
        if source not in out:
            out.append(source)
    return out


def _group_exprs(query: AnalyticsQuery) -> list[str]:
    return [f"toString({DIMENSIONS[d].sql})" for d in query.group_by]


def _group_tuple(query: AnalyticsQuery) -> str:
    return "tuple(" + ", ".join(_group_exprs(query)) + ")"


def _top_groups_type(query: AnalyticsQuery) -> str:
    return "Array(Tuple(" + ", ".join("String" for _ in query.group_by) + "))"


def print_ranking(query: AnalyticsQuery) -> Printed:
    """The N largest groups by ``order_by`` over the whole range, plus one row to tell
    whether anything was cut."""
    conditions = where(query)
    metric = METRICS[query.order_by or query.metrics[0]]
    metric_sql = METRICS[metric.derived_from].sql if metric.derived_from else metric.sql
    groups = ", ".join(f"{expr} AS g{i}" for i, expr in enumerate(_group_exprs(query)))
    order = ", ".join(f"g{i}" for i in range(len(query.group_by)))
    sql = (
        f"SELECT {groups}, {metric_sql} AS rank_value\n"
        f"FROM {TABLE}\nWHERE {conditions.sql()}\n"
        f"GROUP BY {order}\n"
        f"ORDER BY rank_value DESC NULLS LAST, {order}\n"
        "LIMIT {top_n_plus_one:UInt32}"
    )
    params = {**conditions.params, "top_n_plus_one": int(query.top_n or 0) + 1}
    return Printed(sql, params)


def print_main(query: AnalyticsQuery, top_groups: list[tuple[str, ...]] | None = None) -> Printed:
    """Series, per-group totals and summary in one pass with GROUPING SETS."""
    conditions = where(query)
    params = dict(conditions.params)
    params["tz"] = query.timezone
    group_columns = []
    single = len(query.group_by) == 1
    for i, expr in enumerate(_group_exprs(query)):
        if top_groups is not None:
            # Everything outside the top groups folds into one `other` group, so the
            # summary still covers all rows; it is dropped later unless include_other.
            # One dimension: a plain IN over strings is twice as fast as a tuple IN.
            member = (
                f"{expr} IN {{top_groups:Array(String)}}"
                if single
                else f"{_group_tuple(query)} IN {{top_groups:{_top_groups_type(query)}}}"
            )
            expr = f"if({member}, {expr}, '{OTHER_GROUP}')"
        group_columns.append((f"g{i}", expr))
    if top_groups is not None:
        params["top_groups"] = [g[0] for g in top_groups] if single else top_groups
    metric_names = _sql_metrics([*query.metrics, *SUMMARY_ALWAYS])
    select = [f"{bucket_sql(query.bucket)} AS bucket"]
    select += [f"{expr} AS {alias}" for alias, expr in group_columns]
    select += [f"{METRICS[m].sql} AS m_{m}" for m in metric_names]
    keys = ["bucket", *(alias for alias, _ in group_columns)]
    group_keys = [alias for alias, _ in group_columns]
    sets = [f"({', '.join(keys)})", "()"]
    if group_keys:
        sets.insert(1, f"({', '.join(group_keys)})")
    select.append(f"grouping({', '.join(keys)}) AS grouping_id")
    sql = (
        "SELECT " + ",\n       ".join(select) + f"\nFROM {TABLE}\nWHERE {conditions.sql()}\n"
        f"GROUP BY GROUPING SETS ({', '.join(sets)})\n"
        f"ORDER BY grouping_id, {', '.join(keys)}"
    )
    return Printed(sql, params)


def print_summary(query: AnalyticsQuery, start: datetime, end: datetime) -> Printed:
    conditions = where(query, start, end)
    metric_names = _sql_metrics([*query.metrics, *SUMMARY_ALWAYS])
    select = ", ".join(f"{METRICS[m].sql} AS m_{m}" for m in metric_names)
    return Printed(f"SELECT {select}\nFROM {TABLE}\nWHERE {conditions.sql()}", conditions.params)


def print_bucket_list(query: AnalyticsQuery) -> Printed:
    """Every bucket start in [start, end), computed by the same expression as the series."""
    seconds = (query.end - query.start).total_seconds()
    step = min(BUCKETS[query.bucket][1], _FILL_STEP_SECONDS)
    sql = (
        f"SELECT DISTINCT {bucket_sql(query.bucket, 'instant')} AS bucket FROM (\n"  # noqa: S608 - registry identifiers only
        "  SELECT {start_time:DateTime64(3, 'UTC')} + toIntervalSecond(number * {step:UInt32})"
        " AS instant\n"
        "  FROM numbers({points:UInt64})\n"
        "  WHERE instant < {end_time:DateTime64(3, 'UTC')}\n"
        ") ORDER BY bucket"
    )
    params = {
        "tz": query.timezone,
        "start_time": query.start,
        "end_time": query.end,
        "step": step,
        "points": math.ceil(seconds / step) + 1,
    }
    return Printed(sql, params)


# --- execution and assembly -------------------------------------------------------------


@dataclass
class AnalyticsResult:
    time_series: list[dict[str, Any]]
    summary: dict[str, Any]
    meta: dict[str, Any]


def _clean(value: Any, metric: str) -> Any:
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        return int(value) if METRICS[metric].type == "integer" else value
    return int(value) if METRICS[metric].type == "integer" else value


def _metric_values(row: dict[str, Any], names: Iterable[str], seconds: float) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in names:
        metric = METRICS[name]
        if metric.derived_from:
            count = row.get(f"m_{metric.derived_from}") or 0
            values[name] = count / seconds if seconds > 0 else None
        else:
            values[name] = _clean(row.get(f"m_{name}"), name)
    return values


def _empty_metrics(names: Iterable[str]) -> dict[str, Any]:
    return {n: (0 if METRICS[n].additive or METRICS[n].derived_from else None) for n in names}


def _group_values(query: AnalyticsQuery, raw: tuple[str, ...]) -> dict[str, Any]:
    groups: dict[str, Any] = {}
    for name, value in zip(query.group_by, raw, strict=True):
        dimension = DIMENSIONS[name]
        if value == OTHER_GROUP:
            groups[name] = "other"
        elif dimension.empty is not None and value == dimension.empty:
            groups[name] = None
        elif dimension.type == "integer":
            groups[name] = int(value)
        elif dimension.type == "boolean":
            groups[name] = value in ("true", "1")
        else:
            groups[name] = value
    return groups


def _format_time(value: datetime, zone: ZoneInfo) -> str:
    local = value.astimezone(zone)
    text = local.isoformat()
    return text.replace("+00:00", "Z") if text.endswith("+00:00") else text


def _bucket_widths(buckets: list[datetime], query: AnalyticsQuery) -> dict[datetime, float]:
    """Each bucket's real width in seconds (23 or 25 hours on DST days)."""
    widths: dict[datetime, float] = {}
    nominal = BUCKETS[query.bucket][1]
    for i, bucket in enumerate(buckets):
        if i + 1 < len(buckets):
            widths[bucket] = (buckets[i + 1] - bucket).total_seconds()
        else:
            widths[bucket] = float(nominal)
            if query.bucket in ("1d", "1w"):
                zone = ZoneInfo(query.timezone)
                local = bucket.astimezone(zone)
                days = 7 if query.bucket == "1w" else 1
                following = (local.replace(tzinfo=None) + timedelta(days=days)).replace(tzinfo=zone)
                widths[bucket] = (following.astimezone(UTC) - bucket).total_seconds()
    return widths


def run_analytics(query: AnalyticsQuery) -> AnalyticsResult:
    started = time.perf_counter()
    rows_read = 0
    truncated = False
    warnings = list(query.warnings)

    top_groups: list[tuple[str, ...]] | None = None
    if query.top_n and query.group_by:
        ranking = run_select(*_args(print_ranking(query)))
        rows_read += ranking.rows_read
        ranked = [tuple(str(v) for v in row[: len(query.group_by)]) for row in ranking.rows]
        truncated = len(ranked) > query.top_n
        top_groups = ranked[: query.top_n]

    limit = settings.MAX_RESULT_SIZE
    try:
        main = run_select(*_args(print_main(query, top_groups)), max_rows=limit * 2 + 2)
    except QueryTooLarge as exc:
        raise ValidationError(
            {
                "group_by": [
                    f"This request produces more than {limit} points (MAX_RESULT_SIZE). "
                    "Use a coarser time_bucket, fewer group_by dimensions or top_n."
                ]
            }
        ) from exc
    rows_read += main.rows_read

    n_groups = len(query.group_by)
    full_mask = (1 << (n_groups + 1)) - 1  # grouping() bits: bucket + each group column
    series_rows, group_rows, summary_row = [], [], None
    for row in main.dicts():
        grouping_id = row["grouping_id"]
        if (
            not query.include_other
            and grouping_id != full_mask
            and any(row[f"g{i}"] == OTHER_GROUP for i in range(n_groups))
        ):
            continue
        if grouping_id == 0:
            series_rows.append(row)
        elif grouping_id == full_mask:
            summary_row = row
        else:
            group_rows.append(row)
    group_keys = sorted(
        (tuple(r[f"g{i}"] for i in range(n_groups)) for r in group_rows),
        key=lambda key: _group_order(key, top_groups),
    )
    if not n_groups:
        group_keys = [()]

    buckets: list[datetime]
    if query.fill_gaps:
        bucket_list = run_select(*_args(print_bucket_list(query)))
        buckets = [row[0] for row in bucket_list.rows]
    else:
        buckets = sorted({row["bucket"] for row in series_rows})

    points = (len(buckets) if query.fill_gaps else 0) * max(len(group_keys), 1)
    if points > limit or len(series_rows) > limit:
        groups_count = max(len(group_keys), 1)
        fits = finest_fitting_bucket(query.start, query.end, groups_count)
        hint = f"time_bucket '{fits}' would fit" if fits else "no time_bucket fits this range"
        raise ValidationError(
            {
                "time_bucket": [
                    f"{len(buckets)} buckets x {groups_count} groups is more than "
                    f"MAX_RESULT_SIZE ({limit}) points; {hint}, or narrow group_by / use "
                    "top_n."
                ]
            }
        )

    zone = ZoneInfo(query.timezone)
    widths = _bucket_widths(buckets, query)
    by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in series_rows:
        key = (row["bucket"], *(row[f"g{i}"] for i in range(n_groups)))
        by_key[key] = row

    # Timestamps and group objects are rendered once each, not once per point.
    nominal = float(BUCKETS[query.bucket][1])
    stamps = {bucket: _format_time(bucket, zone) for bucket in buckets}
    rendered_groups = {g: _group_values(query, g) if n_groups else {} for g in group_keys}
    series: list[dict[str, Any]] = []
    if query.fill_gaps:
        empty = _empty_metrics(query.metrics)
        for bucket in buckets:
            width = widths.get(bucket, nominal)
            for group in group_keys:
                row = by_key.get((bucket, *group))
                metrics = _metric_values(row, query.metrics, width) if row else dict(empty)
                series.append(
                    {
                        "timestamp": stamps[bucket],
                        "metrics": metrics,
                        "groups": rendered_groups[group],
                    }
                )
    else:
        series_rows.sort(
            key=lambda r: (
                r["bucket"],
                _group_order(tuple(r[f"g{i}"] for i in range(n_groups)), top_groups),
            )
        )
        for row in series_rows:
            bucket = row["bucket"]
            group = tuple(row[f"g{i}"] for i in range(n_groups))
            series.append(
                {
                    "timestamp": stamps[bucket],
                    "metrics": _metric_values(row, query.metrics, widths.get(bucket, nominal)),
                    "groups": rendered_groups.get(group) or _group_values(query, group),
                }
            )

    range_seconds = (query.end - query.start).total_seconds()
    summary_names = list(dict.fromkeys([*query.metrics, "total_requests"]))
    summary = (
        _metric_values(summary_row, summary_names, range_seconds)
        if summary_row
        else _empty_metrics(summary_names)
    )
    summary["total_errors"] = int(summary_row["m_error_count"]) if summary_row else 0

    if query.compare_previous:
        span = query.end - query.start
        previous = run_select(*_args(print_summary(query, query.start - span, query.start)))
        rows_read += previous.rows_read
        prev_row = previous.dicts()[0] if previous.rows else None
        prev_values = (
            _metric_values(prev_row, summary_names, range_seconds)
            if prev_row
            else _empty_metrics(summary_names)
        )
        prev_values["total_errors"] = int(prev_row["m_error_count"]) if prev_row else 0
        summary["previous_period"] = {
            "start_time": _format_time(query.start - span, zone),
            "end_time": _format_time(query.start, zone),
            "metrics": prev_values,
            "change": {
                name: _change(summary.get(name), prev_values.get(name)) for name in prev_values
            },
        }

    meta = {
        "units": {name: METRICS[name].unit for name in query.metrics},
        "truncated": truncated,
        "warnings": warnings,
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 2),
        "rows_read": rows_read,
        "groups": len(group_keys) if n_groups else 0,
    }
    return AnalyticsResult(time_series=series, summary=summary, meta=meta)


def _group_order(key: tuple[str, ...], top_groups: list[tuple[str, ...]] | None) -> tuple:
    """Ranked groups in rank order with `other` last; otherwise by value."""
    if top_groups is None:
        return (0, key)
    if OTHER_GROUP in key:
        return (len(top_groups) + 1, key)
    return (top_groups.index(key) if key in top_groups else len(top_groups), key)


def _change(current: Any, previous: Any) -> dict[str, Any]:
    if current is None or previous is None:
        return {"absolute": None, "percent": None}
    absolute = current - previous
    percent = None if previous == 0 else absolute / previous * 100
    return {"absolute": absolute, "percent": percent}


def _args(printed: Printed) -> tuple[str, dict[str, Any]]:
    return printed.sql, printed.params
