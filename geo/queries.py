"""SQL for ``GET /gateway/geographical-stats``.

One SELECT answers all three lists and the summary: ``GROUP BY GROUPING SETS`` computes
the country, region and city groups plus the grand total from one scan (pre-grouped by
place and client, see ``geo_stats_select``); window functions
over each grouping level rank the groups (``row_number`` for the per-list ``limit``) and
count them, so ``summary`` and ``percent`` cover every matching row, not the returned
top N. Rows without geo data form the ``''`` group of each level, shown as ``Unknown``.

The endpoint runs ``geo_stats_query``: the same shape over the ``geo_15m`` rollup (issue
11), with ``geo_stats_select`` (raw rows, exact) as its fallback when the rollup does not
cover the request or ``exact`` is asked for.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from analytics.query.registry import METRICS
from analytics.query.rollups import QUANTILE_UNIT_MS, RT_QUANTILE_LEVELS
from analytics.query.runner import execute
from analytics.query.tree import Condition, Coverage, FilterLeaf, Rows, Select, Window
from geo.names import UNKNOWN, country_name, region_name

# grouping(country_code, region, city): bit set = column not in the grouping set
# (standard SQL, ClickHouse's default force_grouping_standard_compatibility).
LEVEL_CITY = 0
LEVEL_REGION = 1
LEVEL_COUNTRY = 3
LEVEL_TOTAL = 7

# order_by name → result column (ranked highest first).
GEO_ORDER_COLUMNS: dict[str, str] = {
    "requests": "request_count",
    "errors": "error_count",
    "avg_time": "avg_response_time",
}

# A group of a level is "unknown" when that level's own column is empty.
_UNKNOWN_AT_LEVEL = (
    f"multiIf(geo_level = {LEVEL_COUNTRY}, country_code = '',"
    f" geo_level = {LEVEL_REGION}, region = '',"
    f" geo_level = {LEVEL_CITY}, city = '', 0)"
)


def _ranking_columns(order_column: str) -> tuple[tuple[str, str], ...]:
    """Per-level rank and counts (window functions over the grouped rows)."""
    return (
        (
            f"row_number() OVER (PARTITION BY geo_level ORDER BY {order_column} DESC,"
            " country_code ASC, region ASC, city ASC)",
            "position",
        ),
        (f"countIf(NOT {_UNKNOWN_AT_LEVEL}) OVER (PARTITION BY geo_level)", "known_groups"),
        (
            f"sumIf(request_count, {_UNKNOWN_AT_LEVEL}) OVER (PARTITION BY geo_level)",
            "unknown_requests",
        ),
    )


_GEO_GROUPING_SETS = (
    ("country_code",),
    ("country_code", "region"),
    ("country_code", "region", "city"),
    (),
)


def _top_per_level(source: Select, limit: int, fallback: Select | None = None) -> Select:
    return Select(
        columns=(("*", ""),),
        source=source,
        where=(Condition.of("position <= {top_per_level:UInt32}", top_per_level=limit),),
        order_by=("geo_level DESC", "position ASC"),
        fallback=fallback,
    )


def geo_stats_query(
    window: Window,
    *,
    limit: int,
    order_by: str,
    country_code: str | None = None,
    exact: bool = False,
) -> Select:
    """The query the endpoint runs, answered from the ``geo_15m`` rollup, with today's raw
    tree (``geo_stats_select``) as the fallback when the rollup does not cover the request
    (model_ids / endpoint_ids filters, ``exact``).

    The same two stages as the raw tree: the rollup read merges each place's 15-minute
    rows (counts and sums as values, the percentile and distinct-user states as states:
    ``-MergeState``), then GROUPING SETS roll the places up per level, so each expensive
    state is merged once per place rather than once per level (measured 235 vs 340 ms on
    327k rollup rows). The p95 then comes from quantilesTiming and distinct users from
    uniqCombined64 (bounds in the registry, named in ``data.meta.approximate``)."""
    # The country drill-down as a registry-dimension filter (the rollup covers it).
    rows = Rows(
        scope=window.scope,
        start=window.start,
        end=window.end,
        model_ids=tuple(window.model_ids),
        endpoint_ids=tuple(window.endpoint_ids),
        filters=FilterLeaf("country_code", "eq", country_code) if country_code else None,
    )
    has_coordinates = "latitude != 0 OR longitude != 0"
    unit = QUANTILE_UNIT_MS
    levels = ", ".join(str(level) for level in RT_QUANTILE_LEVELS)
    # Raw expressions for the record (printed only from a rollup: raw runs the fallback).
    by_place = Select(
        columns=(
            ("country_code", ""),
            ("region", ""),
            ("city", ""),
            (f"countIf({has_coordinates})", "located"),
            (f"sumIf(toFloat64(latitude), {has_coordinates})", "latitude_sum"),
            (f"sumIf(toFloat64(longitude), {has_coordinates})", "longitude_sum"),
            (METRICS["total_requests"].sql, "rows"),
            (METRICS["error_count"].sql, "errors"),
            ("sum(toUInt64(response_time_ms))", "response_time_sum"),
            (f"quantilesTimingState({levels})(intDiv(response_time_ms, {unit}))", "response_times"),
            ("uniqCombined64IfState(client_id, client_id != '')", "users"),
            (METRICS["total_tokens"].sql, "tokens"),
        ),
        source=rows,
        group_by=("country_code", "region", "city"),
        metric_columns=MappingProxyType(
            {
                "located": "located",
                "latitude_sum": "latitude_sum",
                "longitude_sum": "longitude_sum",
                "rows": "total_requests",
                "errors": "error_count",
                "response_time_sum": "response_time_sum",
                "response_times": "response_time_percentiles",
                "users": "unique_users_sketch",
                "tokens": "total_tokens",
            }
        ),
        coverage=Coverage(dimensions=("country_code", "region", "city"), exact=exact),
    )
    p95 = f"quantilesTimingMerge({levels})(response_times)[{RT_QUANTILE_LEVELS.index(0.95) + 1}]"
    by_level = _by_level(
        by_place,
        GEO_ORDER_COLUMNS[order_by],
        p95=f"if(request_count = 0, NULL, {p95} * {unit})",
        unique_users="uniqCombined64IfMerge(users)",
    )
    fallback = geo_stats_select(window, limit=limit, order_by=order_by, country_code=country_code)
    return _top_per_level(by_level, limit, fallback)


def _by_level(source: Select, order_column: str, *, p95: str, unique_users: str) -> Select:
    """The per-place groups of ``source`` rolled up per level (GROUPING SETS), ranked."""
    return Select(
        columns=(
            ("grouping(country_code, region, city)", "geo_level"),
            ("country_code", ""),
            ("region", ""),
            ("city", ""),
            ("if(sum(located) = 0, NULL, sum(latitude_sum) / sum(located))", "avg_latitude"),
            ("if(sum(located) = 0, NULL, sum(longitude_sum) / sum(located))", "avg_longitude"),
            ("sum(rows)", "request_count"),
            ("sum(errors)", "error_count"),
            ("if(request_count = 0, NULL, error_count / request_count)", "error_rate"),
            (
                "if(request_count = 0, NULL, sum(response_time_sum) / request_count)",
                "avg_response_time",
            ),
            (p95, "p95_response_time"),
            ("sum(tokens)", "total_tokens"),
            (unique_users, "unique_users"),
            *_ranking_columns(order_column),
        ),
        source=source,
        grouping_sets=_GEO_GROUPING_SETS,
    )


def geo_stats_select(
    window: Window, *, limit: int, order_by: str, country_code: str | None = None
) -> Select:
    """Country, region, city and total groups, the top ``limit`` of each level, from raw
    rows (the fallback of ``geo_stats_query``)."""
    conditions = ()
    if country_code:
        conditions = (
            Condition.of("country_code = {country_code:String}", country_code=country_code),
        )
    order_column = GEO_ORDER_COLUMNS[order_by]
    has_coordinates = "latitude != 0 OR longitude != 0"
    # Two stages: the scan groups rows by (country_code, region, city, client_id), a few
    # thousand groups; GROUPING SETS then roll those up per level, so each level costs a
    # pass over the small groups rather than over every row. Counts and sums add up
    # exactly, means are sum / count, distinct users are counted over the grouped
    # client_id, and the p95 merges quantileExact states (every value kept: still exact).
    by_place = Select(
        columns=(
            ("country_code", ""),
            ("region", ""),
            ("city", ""),
            ("client_id", ""),
            (f"countIf({has_coordinates})", "located"),
            (f"sumIf(toFloat64(latitude), {has_coordinates})", "latitude_sum"),
            (f"sumIf(toFloat64(longitude), {has_coordinates})", "longitude_sum"),
            (METRICS["total_requests"].sql, "rows"),
            (METRICS["error_count"].sql, "errors"),
            ("sum(toUInt64(response_time_ms))", "response_time_sum"),
            ("quantileExactOrNullState(0.95)(response_time_ms)", "response_times"),
            (METRICS["total_tokens"].sql, "tokens"),
        ),
        source=window.rows(*conditions),
        group_by=("country_code", "region", "city", "client_id"),
    )
    by_level = _by_level(
        by_place,
        order_column,
        p95="quantileExactOrNullMerge(0.95)(response_times)",
        unique_users=METRICS["unique_users"].sql,
    )
    return _top_per_level(by_level, limit)


def _metrics(row: dict[str, Any], total_requests: int) -> dict[str, Any]:
    requests = int(row["request_count"])
    return {
        "request_count": requests,
        "error_count": int(row["error_count"]),
        "error_rate": row["error_rate"],
        "avg_response_time": row["avg_response_time"],
        "p95_response_time": row["p95_response_time"],
        "total_tokens": int(row["total_tokens"]),
        "unique_users": int(row["unique_users"]),
        "percent": requests / total_requests if total_requests else 0.0,
    }


def _place(row: dict[str, Any]) -> dict[str, Any]:
    code = row["country_code"]
    return {"country_code": code or None, "country_name": country_name(code)}


def _round_coordinate(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def geo_stats(
    window: Window,
    *,
    limit: int,
    order_by: str,
    country_code: str | None = None,
    exact: bool = False,
) -> dict[str, Any]:
    """Countries, regions and cities ranked by ``order_by`` with the Unknown bucket, and
    totals over every matching row (from the ``geo_15m`` rollup when it covers the
    request and ``exact`` is false, else from raw rows)."""
    select = geo_stats_query(
        window, limit=limit, order_by=order_by, country_code=country_code, exact=exact
    )
    return shape_geo_stats(execute(select, max_rows=3 * limit + 1).dicts())


def shape_geo_stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The rows of ``geo_stats_select`` as the response's data (pure: no database)."""
    by_level: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_level.setdefault(int(row["geo_level"]), []).append(row)
    total = by_level.get(LEVEL_TOTAL, [])
    total_requests = int(total[0]["request_count"]) if total else 0

    def level_count(level: int, column: str) -> int:
        group = by_level.get(level)
        return int(group[0][column]) if group else 0

    countries = [
        {**_place(row), **_metrics(row, total_requests)} for row in by_level.get(LEVEL_COUNTRY, [])
    ]
    regions = [
        {
            **_place(row),
            "region": row["region"] or UNKNOWN,
            "region_name": region_name(row["country_code"], row["region"]),
            **_metrics(row, total_requests),
        }
        for row in by_level.get(LEVEL_REGION, [])
    ]
    cities = [
        {
            **_place(row),
            "region": row["region"] or UNKNOWN,
            "city": row["city"] or UNKNOWN,
            "latitude": _round_coordinate(row["avg_latitude"]) if row["city"] else None,
            "longitude": _round_coordinate(row["avg_longitude"]) if row["city"] else None,
            **_metrics(row, total_requests),
        }
        for row in by_level.get(LEVEL_CITY, [])
    ]
    return {
        "countries": countries,
        "regions": regions,
        "cities": cities,
        "summary": {
            "total_countries": level_count(LEVEL_COUNTRY, "known_groups"),
            "total_regions": level_count(LEVEL_REGION, "known_groups"),
            "total_cities": level_count(LEVEL_CITY, "known_groups"),
            "total_requests": total_requests,
            "unknown_requests": level_count(LEVEL_COUNTRY, "unknown_requests"),
        },
    }
