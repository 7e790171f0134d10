"""``POST /gateway/analytics``: the request as query trees, run, then shaped.

Round trips: one table query answers series, per-group totals and the summary together
(``GROUP BY GROUPING SETS``); ``top_n`` adds a ranking query first (the main query needs
its answer); ``compare_previous`` adds the previous period's summary; the bucket list for
gap filling is a table-less ``BucketList`` with the very same bucket expression.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from django.conf import settings

from analytics.query.buckets import bucket_sql, format_time
from analytics.query.drilldown import drilldown_template
from analytics.query.planner import plan
from analytics.query.registry import METRICS, dimension
from analytics.query.rollups import ROLLUPS
from analytics.query.runner import execute
from analytics.query.scope import ProjectScope
from analytics.query.shaper import (
    FOLDED_OTHER,
    FOLDED_VALUE,
    AnalyticsResult,
    SeriesRows,
    group_values,
    shape_series,
)
from analytics.query.tree import BucketList, Coverage, Filter, Rows, Select
from budmetrics_site.exceptions import ResultTooLargeError, TooManyResultRowsError

# Every summary carries these, whatever was asked (the seed's summary shape).
SUMMARY_ALWAYS = ("total_requests", "error_count")


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
    filters: Filter | None = None
    fill_gaps: bool = True
    top_n: int | None = None
    order_by: str | None = None
    include_other: bool = False
    compare_previous: bool = False
    warnings: tuple[str, ...] = ()
    exact: bool = False  # force raw rows (no rollup)

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
            exact=bool(data.get("exact", False)),
        )

    def rows(self, start: datetime | None = None, end: datetime | None = None) -> Rows:
        return Rows(
            scope=self.scope,
            start=start or self.start,
            end=end or self.end,
            model_ids=tuple(self.model_ids),
            endpoint_ids=tuple(self.endpoint_ids),
            filters=self.filters,
        )


# --- query trees ------------------------------------------------------------------------


def sql_metrics(names: Iterable[str]) -> list[str]:
    """Metric names that need an SQL column (derived ones read their source column)."""
    out: list[str] = []
    for name in names:
        source = METRICS[name].derived_from or name
        if source not in out:
            out.append(source)
    return out


def _group_exprs(query: AnalyticsQuery) -> list[str]:
    return [f"toString({dimension(d).sql})" for d in query.group_by]


def _coverage(query: AnalyticsQuery, bucketed: bool) -> Coverage:
    return Coverage(
        dimensions=query.group_by,
        bucket=query.bucket if bucketed else None,
        timezone=query.timezone,
        exact=query.exact,
    )


def _group_params(query: AnalyticsQuery) -> dict[str, Any]:
    """Parameters the group_by expressions name (tag keys)."""
    params: dict[str, Any] = {}
    for name in query.group_by:
        params.update(dimension(name).bound)
    return params


def ranking_select(query: AnalyticsQuery) -> Select:
    """The N largest groups by ``order_by`` over the whole range, plus one row to tell
    whether anything was cut."""
    metric = METRICS[query.order_by or query.metrics[0]]
    ranked_by = metric.derived_from or metric.name
    metric_sql = METRICS[ranked_by].sql
    keys = tuple(f"g{i}" for i in range(len(query.group_by)))
    return Select(
        columns=(
            *((expr, f"g{i}") for i, expr in enumerate(_group_exprs(query))),
            (metric_sql, "rank_value"),
        ),
        source=query.rows(),
        group_by=keys,
        order_by=("rank_value DESC NULLS LAST", *keys),
        limit=int(query.top_n or 0) + 1,
        params=MappingProxyType(_group_params(query)),
        metric_columns=MappingProxyType({"rank_value": ranked_by}),
        coverage=_coverage(query, bucketed=False),
    )


def main_select(query: AnalyticsQuery, top_groups: list[tuple[str, ...]] | None = None) -> Select:
    """Series, per-group totals and summary in one pass with GROUPING SETS."""
    params: dict[str, Any] = {"tz": query.timezone, **_group_params(query)}
    single = len(query.group_by) == 1
    group_columns = []
    for i, expr in enumerate(_group_exprs(query)):
        if top_groups is not None:
            # Everything outside the top groups folds into one `other` group, so the
            # summary still covers all rows; it is dropped later unless include_other.
            # Real values carry a prefix, so no stored value can pass for `other`.
            # One dimension: a plain IN over strings is twice as fast as a tuple IN.
            if single:
                member = f"{expr} IN {{top_groups:Array(String)}}"
            else:
                tuple_type = ", ".join("String" for _ in query.group_by)
                member = (
                    f"tuple({', '.join(_group_exprs(query))}) IN "
                    f"{{top_groups:Array(Tuple({tuple_type}))}}"
                )
            expr = f"if({member}, concat('{FOLDED_VALUE}', {expr}), '{FOLDED_OTHER}')"
        group_columns.append((expr, f"g{i}"))
    if top_groups is not None:
        params["top_groups"] = [g[0] for g in top_groups] if single else top_groups
    keys = ("bucket", *(alias for _, alias in group_columns))
    group_keys = keys[1:]
    sets: list[tuple[str, ...]] = [keys, ()]
    if group_keys:
        sets.insert(1, group_keys)
    names = sql_metrics([*query.metrics, *SUMMARY_ALWAYS])
    metric_columns = [(METRICS[m].sql, f"m_{m}") for m in names]
    return Select(
        columns=(
            (bucket_sql(query.bucket), "bucket"),
            *group_columns,
            *metric_columns,
            (f"grouping({', '.join(keys)})", "grouping_id"),
        ),
        source=query.rows(),
        grouping_sets=tuple(sets),
        order_by=("grouping_id", *keys),
        params=MappingProxyType(params),
        metric_columns=MappingProxyType({f"m_{m}": m for m in names}),
        coverage=_coverage(query, bucketed=True),
    )


def summary_select(query: AnalyticsQuery, start: datetime, end: datetime) -> Select:
    names = sql_metrics([*query.metrics, *SUMMARY_ALWAYS])
    return Select(
        columns=tuple((METRICS[m].sql, f"m_{m}") for m in names),
        source=query.rows(start, end),
        metric_columns=MappingProxyType({f"m_{m}": m for m in names}),
        coverage=_coverage(query, bucketed=False),
    )


def bucket_list(query: AnalyticsQuery) -> BucketList:
    return BucketList(query.start, query.end, query.bucket, query.timezone)


# --- running ----------------------------------------------------------------------------


def _too_many_points(limit: int) -> ResultTooLargeError:
    return ResultTooLargeError(
        "group_by",
        f"This request produces more than {limit} points (MAX_RESULT_SIZE). "
        "Use a coarser time_bucket, fewer group_by dimensions or top_n.",
    )


def past_raw_retention(query: AnalyticsQuery) -> tuple[AnalyticsQuery, list[str]]:
    """A range starting before the raw rows' TTL (``CLICKHOUSE_RETENTION_DAYS``) is
    answered from rollups only: ``exact`` is dropped when a rollup covers the rest, and a
    warning names the metrics unavailable before the cutoff (the sketch metrics' exact
    values; every metric when no rollup covers the request)."""
    cutoff = datetime.now(UTC) - timedelta(days=settings.CLICKHOUSE_RETENTION_DAYS)
    if query.start >= cutoff:
        return query, []
    when = f"before {format_time(cutoff)} (CLICKHOUSE_RETENTION_DAYS)"
    relaxed = replace(query, exact=False)
    chosen = plan(main_select(relaxed))
    rollup = chosen.storage.rollup if chosen.storage else None
    if rollup is None:
        reasons = "; ".join(f"{name}: {why}" for name, why in chosen.refused)
        return query, [
            f"Raw rows {when} are deleted and no rollup covers this request ({reasons}): "
            f"{', '.join(query.metrics)} are unavailable for that part of the range."
        ]
    sketched = [m for m in query.metrics if m in rollup.approximate]
    warning = f"Raw rows {when} are deleted; this answer comes from the {rollup.name} rollup"
    if query.exact:
        warning += " (exact: true could not be honoured)"
    if sketched:
        warning += f"; exact values of {', '.join(sketched)} are unavailable (sketches)"
    return relaxed, [warning + "."]


def run_analytics(query: AnalyticsQuery) -> AnalyticsResult:
    """Run the queries an analytics request needs, then shape their rows."""
    started = time.perf_counter()
    query, retention_warnings = past_raw_retention(query)
    rows_read = 0
    sources: list[str] = []
    ranked: list[tuple[str, ...]] | None = None
    if query.top_n and query.group_by:
        ranking = execute(ranking_select(query))
        rows_read += ranking.rows_read
        sources.append(ranking.source)
        ranked = [tuple(str(v) for v in row[: len(query.group_by)]) for row in ranking.rows]
    top_groups = ranked[: query.top_n] if ranked is not None else None

    limit = settings.MAX_RESULT_SIZE
    try:
        main = execute(main_select(query, top_groups), max_rows=limit * 2 + 2)
    except TooManyResultRowsError as exc:  # the row cap; memory limits stay a 422
        raise _too_many_points(limit) from exc
    rows_read += main.rows_read
    sources.append(main.source)

    buckets: list[datetime] | None = None
    if query.fill_gaps:
        buckets = [row[0] for row in execute(bucket_list(query)).rows]

    previous = None
    if query.compare_previous:
        span = query.end - query.start
        result = execute(summary_select(query, query.start - span, query.start))
        rows_read += result.rows_read
        sources.append(result.source)
        previous = result.dicts()[0] if result.rows else None

    shaped = shape_series(
        query,
        SeriesRows(
            main=main.dicts(),
            top_groups=top_groups,
            truncated=ranked is not None and len(ranked) > (query.top_n or 0),
            buckets=buckets,
            previous=previous,
        ),
    )
    rendered_top = (
        [group_values(query.group_by, g) for g in top_groups] if top_groups is not None else None
    )
    shaped.meta["drilldown"] = drilldown_template(query, rendered_top)
    groups = shaped.meta.pop("groups")
    shaped.meta["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 2)
    shaped.meta["rows_read"] = rows_read
    shaped.meta["groups"] = groups
    shaped.meta.update(source_meta(query, main.source, sources))
    shaped.meta["warnings"].extend(retention_warnings)
    return shaped


def source_meta(query: AnalyticsQuery, source: str, sources: list[str]) -> dict[str, Any]:
    """``meta.source`` (the main query's storage: "raw" or a rollup name) and
    ``meta.approximate`` ({metric: error bound} for asked metrics any rollup-read query of
    this answer took from a sketch; {} when everything is exact)."""
    approximate: dict[str, str] = {}
    for name in sources:
        rollup = ROLLUPS.get(name)
        if rollup is not None:
            bounds = rollup.approximate
            approximate.update({m: bounds[m] for m in query.metrics if m in bounds})
    return {"source": source, "approximate": approximate}
