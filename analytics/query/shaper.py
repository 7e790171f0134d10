"""Rows into the analytics answer: pure functions, testable without a database.

Input is what the runner returned (the GROUPING SETS rows, the ranked groups, the bucket
list, the previous period's row); output is ``time_series``, ``summary`` and ``meta`` as
``POST /gateway/analytics`` documents them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from django.conf import settings

from analytics.query.buckets import bucket_widths, finest_fitting_bucket, format_time
from analytics.query.registry import BUCKETS, METRICS, dimension
from budmetrics_site.exceptions import ResultTooLargeError

if TYPE_CHECKING:
    from analytics.query.series import AnalyticsQuery

# With top_n, the main query folds every group outside the top N into one `other` group.
# It returns real group values prefixed with FOLDED_VALUE and the other group as
# FOLDED_OTHER, so no stored value (a path, a tag, anything) can pass for `other`; the
# shaper turns them back into the value and OTHER (None: raw values are never None).
FOLDED_VALUE = "="
FOLDED_OTHER = "*"
OTHER = None


@dataclass(frozen=True)
class SeriesRows:
    """What the queries of one analytics request returned."""

    main: list[dict[str, Any]]
    top_groups: list[tuple[str, ...]] | None = None
    truncated: bool = False
    buckets: list[datetime] | None = None  # every bucket in range, when filling gaps
    previous: dict[str, Any] | None = None  # the previous period's summary row


@dataclass
class AnalyticsResult:
    time_series: list[dict[str, Any]]
    summary: dict[str, Any]
    meta: dict[str, Any]


def clean_metric(value: Any, metric: str) -> Any:
    """A metric value as JSON: NaN/inf are null, integer metrics are ints."""
    if value is None:
        return None
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return int(value) if METRICS[metric].type == "integer" else value


def metric_values(row: dict[str, Any], names: Iterable[str], seconds: float) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in names:
        metric = METRICS[name]
        if metric.derived_from:
            count = row.get(f"m_{metric.derived_from}") or 0
            values[name] = count / seconds if seconds > 0 else None
        else:
            values[name] = clean_metric(row.get(f"m_{name}"), name)
    return values


def empty_metrics(names: Iterable[str]) -> dict[str, Any]:
    return {n: (0 if METRICS[n].additive or METRICS[n].derived_from else None) for n in names}


def group_values(group_by: tuple[str, ...], raw: tuple[str, ...]) -> dict[str, Any]:
    groups: dict[str, Any] = {}
    for name, value in zip(group_by, raw, strict=True):
        spec = dimension(name)
        if value is OTHER:
            groups[name] = "other"
        elif spec.empty is not None and value == spec.empty:
            groups[name] = None
        elif spec.type == "integer":
            groups[name] = int(value)
        elif spec.type == "boolean":
            groups[name] = value in ("true", "1")
        else:
            groups[name] = value
    return groups


def group_order(key: tuple[str, ...], top_groups: list[tuple[str, ...]] | None) -> tuple:
    """Ranked groups in rank order with `other` last; otherwise by value."""
    if top_groups is None:
        return (0, key)
    if OTHER in key:
        return (len(top_groups) + 1, key)
    return (top_groups.index(key) if key in top_groups else len(top_groups), key)


def change(current: Any, previous: Any) -> dict[str, Any]:
    if current is None or previous is None:
        return {"absolute": None, "percent": None}
    absolute = current - previous
    percent = None if previous == 0 else absolute / previous * 100
    return {"absolute": absolute, "percent": percent}


def _unfold(rows: list[dict[str, Any]], n_groups: int) -> list[dict[str, Any]]:
    """Rows of a folded (top_n) query with their group values as stored, `other` as OTHER."""
    names = [f"g{i}" for i in range(n_groups)]
    unfolded = []
    for row in rows:
        row = dict(row)
        for name in names:
            value = row[name]
            row[name] = OTHER if value == FOLDED_OTHER else value[len(FOLDED_VALUE) :]
        unfolded.append(row)
    return unfolded


def _split(query: AnalyticsQuery, rows: list[dict[str, Any]]) -> tuple[list, list, Any]:
    """GROUPING SETS rows into series rows, per-group rows and the summary row; `other`
    rows are dropped unless asked for (the summary still counts them)."""
    n_groups = len(query.group_by)
    full_mask = (1 << (n_groups + 1)) - 1  # grouping() bits: bucket + each group column
    series_rows, group_rows, summary_row = [], [], None
    for row in rows:
        grouping_id = row["grouping_id"]
        if (
            not query.include_other
            and grouping_id != full_mask
            and any(row[f"g{i}"] is OTHER for i in range(n_groups))
        ):
            continue
        if grouping_id == 0:
            series_rows.append(row)
        elif grouping_id == full_mask:
            summary_row = row
        else:
            group_rows.append(row)
    return series_rows, group_rows, summary_row


def _check_size(query: AnalyticsQuery, buckets: list[datetime], groups: int, series: int) -> None:
    limit = settings.MAX_RESULT_SIZE
    points = (len(buckets) if query.fill_gaps else 0) * max(groups, 1)
    if points > limit or series > limit:
        fits = finest_fitting_bucket(query.start, query.end, max(groups, 1))
        hint = f"time_bucket '{fits}' would fit" if fits else "no time_bucket fits this range"
        raise ResultTooLargeError(
            "time_bucket",
            f"{len(buckets)} buckets x {max(groups, 1)} groups is more than "
            f"MAX_RESULT_SIZE ({limit}) points; {hint}, or narrow group_by / use top_n.",
        )


def shape_series(query: AnalyticsQuery, rows: SeriesRows) -> AnalyticsResult:
    """The answer's time series (gap-filled when asked), summary and meta."""
    n_groups = len(query.group_by)
    top_groups = rows.top_groups
    main = rows.main if top_groups is None else _unfold(rows.main, n_groups)
    series_rows, group_rows, summary_row = _split(query, main)
    group_keys = sorted(
        (tuple(r[f"g{i}"] for i in range(n_groups)) for r in group_rows),
        key=lambda key: group_order(key, top_groups),
    )
    if not n_groups:
        group_keys = [()]
    if rows.buckets is not None:
        buckets = rows.buckets
    else:
        buckets = sorted({row["bucket"] for row in series_rows})
    _check_size(query, buckets, len(group_keys) if n_groups else 1, len(series_rows))

    zone = ZoneInfo(query.timezone)
    widths = bucket_widths(buckets, query.bucket, query.timezone)
    nominal = float(BUCKETS[query.bucket][1])
    # Timestamps and group objects are rendered once each, not once per point.
    stamps = {bucket: format_time(bucket, zone) for bucket in buckets}
    rendered = {g: group_values(query.group_by, g) if n_groups else {} for g in group_keys}
    series: list[dict[str, Any]] = []
    if query.fill_gaps:
        by_key = {(r["bucket"], *(r[f"g{i}"] for i in range(n_groups))): r for r in series_rows}
        empty = empty_metrics(query.metrics)
        for bucket in buckets:
            width = widths.get(bucket, nominal)
            for group in group_keys:
                row = by_key.get((bucket, *group))
                metrics = metric_values(row, query.metrics, width) if row else dict(empty)
                series.append(
                    {"timestamp": stamps[bucket], "metrics": metrics, "groups": rendered[group]}
                )
    else:
        series_rows.sort(
            key=lambda r: (
                r["bucket"],
                group_order(tuple(r[f"g{i}"] for i in range(n_groups)), top_groups),
            )
        )
        for row in series_rows:
            bucket = row["bucket"]
            group = tuple(row[f"g{i}"] for i in range(n_groups))
            series.append(
                {
                    "timestamp": stamps[bucket],
                    "metrics": metric_values(row, query.metrics, widths.get(bucket, nominal)),
                    "groups": rendered.get(group) or group_values(query.group_by, group),
                }
            )

    range_seconds = (query.end - query.start).total_seconds()
    summary = _summary(query, summary_row, range_seconds)
    if query.compare_previous:
        previous = _summary(query, rows.previous, range_seconds)
        span = query.end - query.start
        summary["previous_period"] = {
            "start_time": format_time(query.start - span, zone),
            "end_time": format_time(query.start, zone),
            "metrics": previous,
            "change": {name: change(summary.get(name), previous.get(name)) for name in previous},
        }
    meta = {
        "units": {name: METRICS[name].unit for name in query.metrics},
        "truncated": rows.truncated,
        "warnings": list(query.warnings),
        "groups": len(group_keys) if n_groups else 0,
    }
    return AnalyticsResult(time_series=series, summary=summary, meta=meta)


def _summary(query: AnalyticsQuery, row: dict[str, Any] | None, seconds: float) -> dict[str, Any]:
    names = list(dict.fromkeys([*query.metrics, "total_requests"]))
    values = metric_values(row, names, seconds) if row else empty_metrics(names)
    values["total_errors"] = int(row["m_error_count"]) if row else 0
    return values
