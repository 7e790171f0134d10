"""SQL for ``GET /gateway/top-routes`` and ``GET /gateway/client-analytics``.

Each endpoint is one query tree over the caller's ``Rows`` (the printer adds the tenant
guard), with registry metric expressions and the constant column sets below; every user
value is a bound parameter. Totals for ``percent`` and ``summary`` come from window
functions over the grouped rows, evaluated before ``LIMIT``, so they count every matching
row rather than the returned top N, without a second scan.

Top routes run ``top_routes_query``: the same shape over the ``routes_15m`` rollup (issue
11), with ``top_routes_select`` (raw rows, exact) as its fallback when the rollup does not
cover the request or ``exact`` is asked for.
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType
from typing import Any

from analytics.access.privacy import present_ip
from analytics.paths import template_sql
from analytics.query.registry import HAS_TTFT, METRICS
from analytics.query.rollups import (
    QUANTILE_UNIT_MS,
    RT_QUANTILE_LEVELS,
    TTFT_QUANTILE_LEVELS,
    quantile_levels_sql,
)
from analytics.query.runner import execute
from analytics.query.tree import Condition, Coverage, FilterLeaf, FilterNode, Rows, Select, Window
from analytics.useragent import AgentInfo, parse_agent
from analytics.useragent import agent_value as _agent_value

# order_by name → result column (all ranked highest first).
ROUTE_ORDER_COLUMNS: dict[str, str] = {
    "requests": "request_count",
    "errors": "error_count",
    "error_rate": "error_rate",
    "avg_time": "avg_response_time",
    "p95_time": "p95_response_time",
    "tokens": "total_tokens",
}
CLIENT_ORDER_COLUMNS: dict[str, str] = {
    "requests": "request_count",
    "errors": "error_count",
    "tokens": "total_tokens",
    "cost": "total_cost",
    "last_activity": "last_activity",
}
# Client attributes a request may be filtered by: parameter → stored column.
CLIENT_AGENT_COLUMNS = ("device_type", "browser", "os")
# Distinct user agents parsed in Python to apply device/browser/os filters to rows whose
# stored field is empty; more than this and the query is refused as too large (422).
MAX_PARSED_USER_AGENTS = 10_000
MAX_COUNTRIES_PER_CLIENT = 300


# --- Top routes ---------------------------------------------------------------------------


def top_routes_select(
    window: Window,
    *,
    limit: int,
    order_by: str,
    method: str | None = None,
    path: str | None = None,
    route: str | None = None,
    group_ids: bool = True,
) -> Select:
    """One GROUP BY (route template, method), ranked by ``order_by``; window totals give
    ``percent`` and the summary over all routes."""
    conditions = []
    if method:
        conditions.append(Condition.of("method = {method:String}", method=method))
    if path:
        conditions.append(Condition.of("path = {raw_path:String}", raw_path=path))
    if route:
        conditions.append(Condition.of(f"{template_sql('path')} = {{route:String}}", route=route))
    # Two stages: group the rows by raw (path, method) first (far fewer groups than rows),
    # then template the distinct paths and re-aggregate, so the regexes run once per
    # distinct path instead of once per row. Counts and sums add up exactly; the mean is
    # sum / count (what avg computes); percentiles merge quantileExact states, which keep
    # every value, so they stay exact.
    by_path = Select(
        columns=(
            ("path", ""),
            ("method", ""),
            (METRICS["total_requests"].sql, "rows"),
            (METRICS["error_count"].sql, "errors"),
            ("sum(toUInt64(response_time_ms))", "response_time_sum"),
            ("quantilesExactState(0.95, 0.99)(response_time_ms)", "response_times"),
            (f"quantileExactOrNullIfState(0.95)(ttft_ms, {HAS_TTFT})", "ttft_times"),
            (METRICS["total_tokens"].sql, "tokens"),
        ),
        source=window.rows(*conditions),
        group_by=("path", "method"),
    )
    return _by_route(
        by_path,
        (
            ("quantilesExactMerge(0.95, 0.99)(response_times)", "percentiles"),
            ("percentiles[1]", "p95_response_time"),
            ("percentiles[2]", "p99_response_time"),
            # Streamed requests with a first token only; NULL for a route with none.
            ("quantileExactOrNullIfMerge(0.95)(ttft_times)", "p95_ttft"),
        ),
        group_ids=group_ids,
        order_by=order_by,
        limit=limit,
    )


def _by_route(
    by_path: Select,
    percentiles: tuple[tuple[str, str], ...],
    *,
    group_ids: bool,
    order_by: str,
    limit: int,
    where: tuple[Condition, ...] = (),
    fallback: Select | None = None,
) -> Select:
    """The second stage of both route queries: paths grouped under their templates,
    counts and sums added, ``percentiles`` (the columns that merge the first stage's
    percentile states, which differ between raw and rollup) in between."""
    return Select(
        columns=(
            (template_sql("path") if group_ids else "path", "route"),
            ("method", ""),
            ("sum(rows)", "request_count"),
            ("sum(errors)", "error_count"),
            ("if(request_count = 0, NULL, error_count / request_count)", "error_rate"),
            (
                "if(request_count = 0, NULL, sum(response_time_sum) / request_count)",
                "avg_response_time",
            ),
            *percentiles,
            ("sum(tokens)", "total_tokens"),
            ("sum(request_count) OVER ()", "all_requests"),
            ("count() OVER ()", "all_routes"),
        ),
        source=by_path,
        where=where,
        group_by=("route", "method"),
        order_by=(f"{ROUTE_ORDER_COLUMNS[order_by]} DESC", "route ASC", "method ASC"),
        limit=limit,
        fallback=fallback,
    )


def top_routes_query(
    window: Window,
    *,
    limit: int,
    order_by: str,
    method: str | None = None,
    path: str | None = None,
    route: str | None = None,
    group_ids: bool = True,
    exact: bool = False,
) -> Select:
    """The query the endpoint runs: per (raw path, method) from the ``routes_15m`` rollup
    (method and path as registry-dimension filters, the route filter on the templated
    paths above it), percentiles as merged states per path, merged again per route; with
    today's raw tree (``top_routes_select``) as the fallback when the rollup does not
    cover the request (model_ids / endpoint_ids filters, ``exact``). Percentiles then come
    from quantilesTiming (bound in the registry, named in ``meta``)."""
    leaves = []
    if method:
        leaves.append(FilterLeaf("method", "eq", method))
    if path:
        leaves.append(FilterLeaf("path", "eq", path))
    rows = Rows(
        scope=window.scope,
        start=window.start,
        end=window.end,
        model_ids=tuple(window.model_ids),
        endpoint_ids=tuple(window.endpoint_ids),
        filters=(leaves[0] if len(leaves) == 1 else FilterNode("and", tuple(leaves)))
        if leaves
        else None,
    )
    rt_levels, ttft_levels = (
        quantile_levels_sql(RT_QUANTILE_LEVELS),
        quantile_levels_sql(TTFT_QUANTILE_LEVELS),
    )
    unit = QUANTILE_UNIT_MS
    # Raw expressions for the record (printed only from a rollup: raw runs the fallback).
    by_path = Select(
        columns=(
            ("path", ""),
            ("method", ""),
            (METRICS["total_requests"].sql, "rows"),
            (METRICS["error_count"].sql, "errors"),
            ("sum(toUInt64(response_time_ms))", "response_time_sum"),
            (
                f"quantilesTimingState({rt_levels})(intDiv(response_time_ms, {unit}))",
                "response_times",
            ),
            (f"countIf({HAS_TTFT})", "ttft_count"),
            (
                f"quantilesTimingIfState({ttft_levels})(intDiv(ttft_ms, {unit}), {HAS_TTFT})",
                "ttft_times",
            ),
            (METRICS["total_tokens"].sql, "tokens"),
        ),
        source=rows,
        group_by=("path", "method"),
        metric_columns=MappingProxyType(
            {
                "rows": "total_requests",
                "errors": "error_count",
                "response_time_sum": "response_time_sum",
                "response_times": "response_time_percentiles",
                "ttft_count": "ttft_count",
                "ttft_times": "ttft_percentiles",
                "tokens": "total_tokens",
            }
        ),
        coverage=Coverage(dimensions=("path", "method"), exact=exact),
    )
    where = ()
    if route:
        where = (Condition.of(f"{template_sql('path')} = {{route:String}}", route=route),)
    rt = RT_QUANTILE_LEVELS
    fallback = top_routes_select(
        window,
        limit=limit,
        order_by=order_by,
        method=method,
        path=path,
        route=route,
        group_ids=group_ids,
    )
    return _by_route(
        by_path,
        (
            (f"quantilesTimingMerge({rt_levels})(response_times)", "percentiles"),
            (
                f"if(request_count = 0, NULL, percentiles[{rt.index(0.95) + 1}] * {unit})",
                "p95_response_time",
            ),
            (
                f"if(request_count = 0, NULL, percentiles[{rt.index(0.99) + 1}] * {unit})",
                "p99_response_time",
            ),
            # Streamed requests with a first token only; NULL for a route with none.
            (
                f"if(sum(ttft_count) = 0, NULL, quantilesTimingIfMerge({ttft_levels})"
                f"(ttft_times)[{TTFT_QUANTILE_LEVELS.index(0.95) + 1}] * {unit})",
                "p95_ttft",
            ),
        ),
        group_ids=group_ids,
        order_by=order_by,
        limit=limit,
        where=where,
        fallback=fallback,
    )


def top_routes(window: Window, **options: Any) -> dict[str, Any]:
    """Routes ranked by ``order_by`` with their share of all matching requests (from the
    ``routes_15m`` rollup when it covers the request and ``exact`` is false, else from
    raw rows)."""
    return shape_top_routes(
        execute(top_routes_query(window, **options), max_rows=options["limit"]).dicts()
    )


def shape_top_routes(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The rows of ``top_routes_select`` as the response's data (pure: no database)."""
    total_requests = int(rows[0]["all_requests"]) if rows else 0
    routes = [
        {
            "path": row["route"],
            "method": row["method"],
            "request_count": int(row["request_count"]),
            "error_count": int(row["error_count"]),
            "error_rate": row["error_rate"],
            "avg_response_time": row["avg_response_time"],
            "p95_response_time": row["p95_response_time"],
            "p99_response_time": row["p99_response_time"],
            "p95_ttft": None if row["p95_ttft"] is None else int(row["p95_ttft"]),
            "total_tokens": int(row["total_tokens"]),
            "percent": int(row["request_count"]) / total_requests if total_requests else 0.0,
        }
        for row in rows
    ]
    return {
        "routes": routes,
        "summary": {
            "total_routes": int(rows[0]["all_routes"]) if rows else 0,
            "total_requests": total_requests,
        },
    }


# --- Client analytics ---------------------------------------------------------------------


# Per-client attributes counted by value: each is a (client_id, attribute) grouping set of
# the first stage of the client query.
_CLIENT_VALUE_COLUMNS = ("client_ip", "user_agent", "device_type", "browser", "os", "country_code")


def _grouping_level(column: str) -> int:
    """``grouping(<_CLIENT_VALUE_COLUMNS>)`` of the (client_id, ``column``) grouping set:
    a set bit is a column not in the set (standard SQL)."""
    width = len(_CLIENT_VALUE_COLUMNS)
    return (2**width - 1) ^ (1 << (width - 1 - _CLIENT_VALUE_COLUMNS.index(column)))


def _most_frequent(column: str) -> str:
    """The most frequent non-empty value of ``column`` (a trusted column name) for the
    client, exactly (a count map summed from the (client_id, column) groups, not topK's
    sketch); ties → the smallest value."""
    level = _grouping_level(column)
    counts = f"sumMapIf([{column}], [rows], value_level = {level} AND {column} != '')"
    return f"arrayElement(({counts}).1, indexOf(({counts}).2, arrayMax(({counts}).2)))"


def _client_rows(
    window: Window,
    *,
    search: str | None,
    agent_filters: dict[str, str],
) -> Rows:
    """Rows of identified clients matching the search and device/browser/os filters. A
    filter matches the stored field case-insensitively, or, where the gateway stored
    nothing, the value ua-parser reads from the row's user agent."""
    conditions = [Condition("client_id != ''")]
    if search:
        found = "positionCaseInsensitiveUTF8(client_id, {search:String}) > 0"
        conditions.append(Condition.of(found, search=search))
    rows = window.rows(*conditions)
    if not agent_filters:
        return rows
    matching = _user_agents_matching(rows, agent_filters)
    return rows.narrowed(
        *(
            Condition.of(
                f"lowerUTF8({column}) = lowerUTF8({{{column}:String}})"
                f" OR ({column} = '' AND user_agent IN {{{column}_agents:Array(String)}})",
                **{column: value, f"{column}_agents": matching[column]},
            )
            for column, value in agent_filters.items()
        )
    )


def _user_agents_matching(rows: Rows, agent_filters: dict[str, str]) -> dict[str, list[str]]:
    """For each filter, the distinct user agents (of rows lacking that stored field) whose
    parsed value equals the filter value."""
    empty_any = " OR ".join(f"{column} = ''" for column in agent_filters)
    select = Select(
        columns=(("user_agent", ""),),
        source=rows.narrowed(Condition(f"({empty_any}) AND user_agent != ''")),
        distinct=True,
    )
    agents = [row[0] for row in execute(select, max_rows=MAX_PARSED_USER_AGENTS).rows]
    matching: dict[str, list[str]] = {column: [] for column in agent_filters}
    for agent in agents:
        info = parse_agent(agent)
        for column, value in agent_filters.items():
            parsed = _agent_value(info, column)
            if parsed is not None and parsed.lower() == value.lower():
                matching[column].append(agent)
    return matching


# The client rollup's measures as the raw first stage computes them: (alias, rollup measure,
# raw expression). The raw expressions are never run (the raw shape is the fallback tree);
# they say what each merged state equals.
_CLIENT_ROLLUP_COLUMNS = (
    ("rows", "client_requests", "count()"),
    ("errors", "client_errors", "countIf(status_code >= 400)"),
    ("response_time_sum", "client_response_time_sum", "sum(toUInt64(response_time_ms))"),
    ("tokens", "client_tokens", "sum(toUInt64(total_tokens))"),
    ("cost_sum", "client_cost", "sum(cost)"),
    ("cached", "client_cached", "countIf(routing_decision = 'cached')"),
    ("routed", "client_routed", "countIf(routing_decision != '')"),
    ("last_seen", "client_last_seen", "max(timestamp)"),
    *(
        (f"{column}_counts", f"client_{prefix}_counts", f"sumMap(map({column}, toUInt64(1)))")
        for column, prefix in (
            ("client_ip", "ip"),
            ("user_agent", "agent"),
            ("device_type", "device"),
            ("browser", "browser"),
            ("os", "os"),
            ("country_code", "country"),
        )
    ),
)


def _map_values(counts: str) -> str:
    """The non-empty values of a value -> count map column, ascending."""
    return f"arraySort(arrayFilter(v -> v != '', mapKeys({counts})))"


def _map_most_frequent(counts: str) -> str:
    """The most frequent non-empty value of a count map, ties -> the smallest, as
    ``_most_frequent`` gives over raw rows; '' when there is none."""
    pairs = f"arrayFilter(p -> p.1 != '', arrayZip(mapKeys({counts}), mapValues({counts})))"
    return f"tupleElement(arrayElement(arraySort(p -> (-p.2, p.1), {pairs}), 1), 1)"


def client_rollup_select(
    window: Window, *, limit: int, offset: int, order_by: str, exact: bool, fallback: Select
) -> Select:
    """The page of ``client_analytics_select`` shaped for the client rollup: one GROUP BY
    client_id over merged states (counts, sums, max and exact count maps, so every number
    equals raw), then the same ranking, page and window totals; ``fallback`` (today's raw
    two-stage tree) runs when the rollup does not answer (``exact``, model/endpoint ids,
    a range with no whole 15 minutes)."""
    identified = FilterLeaf("client_id", "is_empty", False)  # client_id != ''
    per_client = Select(
        columns=(
            ("client_id", ""),
            *((raw, alias) for alias, _, raw in _CLIENT_ROLLUP_COLUMNS),
        ),
        source=replace(window.rows(), filters=identified),
        group_by=("client_id",),
        metric_columns={alias: measure for alias, measure, _ in _CLIENT_ROLLUP_COLUMNS},
        coverage=Coverage(dimensions=("client_id",), exact=exact),
    )
    return Select(
        columns=(
            ("client_id", ""),
            (_map_most_frequent("client_ip_counts"), "top_client_ip"),
            ("rows", "request_count"),
            ("errors", "error_count"),
            (
                "if(request_count = 0, NULL, response_time_sum / request_count)",
                "avg_response_time",
            ),
            ("tokens", "total_tokens"),
            ("cost_sum", "total_cost"),
            ("if(routed = 0, NULL, cached / routed)", "cache_hit_rate"),
            (
                "if(total_tokens = 0, NULL, total_cost / total_tokens * 1000)",
                "cost_per_1k_tokens",
            ),
            ("last_seen", "last_activity"),
            (_map_most_frequent("user_agent_counts"), "top_user_agent"),
            (_map_most_frequent("device_type_counts"), "top_device_type"),
            (_map_most_frequent("browser_counts"), "top_browser"),
            (_map_most_frequent("os_counts"), "top_os"),
            (f"length({_map_values('client_ip_counts')})", "unique_ips"),
            (
                f"arraySlice({_map_values('country_code_counts')}, 1, {MAX_COUNTRIES_PER_CLIENT})",
                "countries",
            ),
            ("count() OVER ()", "all_clients"),
            ("sum(request_count) OVER ()", "all_requests"),
        ),
        source=per_client,
        order_by=(f"{CLIENT_ORDER_COLUMNS[order_by]} DESC", "client_id ASC"),
        limit=limit + 1,
        offset=offset,
        fallback=fallback,
    )


def client_analytics_select(
    window: Window,
    *,
    limit: int,
    offset: int,
    order_by: str,
    search: str | None = None,
    agent_filters: dict[str, str] | None = None,
    exact: bool = False,
) -> tuple[Select, Rows]:
    """One GROUP BY client_id page (``limit + 1`` rows to know whether there is more),
    with window totals for the summary. Device/browser/os filters may first read the
    distinct user agents to parse (see ``_client_rows``). Without search and those
    filters the page is first offered to the client rollup (``client_rollup_select``),
    with this raw tree as its fallback. Returns the page query and the rows it reads (for
    the empty-page summary)."""
    rows = _client_rows(window, search=search, agent_filters=agent_filters or {})
    # Two stages: one scan groups the rows by (client_id, attribute) for each attribute
    # (GROUPING SETS), far cheaper than building a count map per row; then one GROUP BY
    # client_id sums the counts. Request metrics come from the (client_id, client_ip) sets,
    # which together hold every row exactly once.
    by_ip = _grouping_level("client_ip")
    by_country = _grouping_level("country_code")
    value_columns = ", ".join(_CLIENT_VALUE_COLUMNS)
    by_value = Select(
        columns=(
            ("client_id", ""),
            *((column, "") for column in _CLIENT_VALUE_COLUMNS),
            (f"grouping({value_columns})", "value_level"),
            (METRICS["total_requests"].sql, "rows"),
            (METRICS["error_count"].sql, "errors"),
            ("sum(toUInt64(response_time_ms))", "response_time_sum"),
            (METRICS["total_tokens"].sql, "tokens"),
            (METRICS["total_cost"].sql, "cost_sum"),
            ("countIf(routing_decision = 'cached')", "cached"),
            ("countIf(routing_decision != '')", "routed"),
            ("max(timestamp)", "last_seen"),
        ),
        source=rows,
        grouping_sets=tuple(("client_id", column) for column in _CLIENT_VALUE_COLUMNS),
    )
    page = Select(
        columns=(
            ("client_id", ""),
            (_most_frequent("client_ip"), "top_client_ip"),
            (f"sumIf(rows, value_level = {by_ip})", "request_count"),
            (f"sumIf(errors, value_level = {by_ip})", "error_count"),
            (
                "if(request_count = 0, NULL,"
                f" sumIf(response_time_sum, value_level = {by_ip}) / request_count)",
                "avg_response_time",
            ),
            (f"sumIf(tokens, value_level = {by_ip})", "total_tokens"),
            (f"sumIf(cost_sum, value_level = {by_ip})", "total_cost"),
            # The registry's definitions, per client: cached / recorded routing decisions,
            # cost over tokens (ratios of sums, NULL when nothing was recorded).
            (
                f"if(sumIf(routed, value_level = {by_ip}) = 0, NULL,"
                f" sumIf(cached, value_level = {by_ip}) / sumIf(routed, value_level = {by_ip}))",
                "cache_hit_rate",
            ),
            (
                "if(total_tokens = 0, NULL, total_cost / total_tokens * 1000)",
                "cost_per_1k_tokens",
            ),
            ("max(last_seen)", "last_activity"),
            (_most_frequent("user_agent"), "top_user_agent"),
            (_most_frequent("device_type"), "top_device_type"),
            (_most_frequent("browser"), "top_browser"),
            (_most_frequent("os"), "top_os"),
            (f"uniqExactIf(client_ip, value_level = {by_ip} AND client_ip != '')", "unique_ips"),
            (
                f"arraySort(groupUniqArrayIf({MAX_COUNTRIES_PER_CLIENT})(country_code,"
                f" value_level = {by_country} AND country_code != ''))",
                "countries",
            ),
            ("count() OVER ()", "all_clients"),
            ("sum(request_count) OVER ()", "all_requests"),
        ),
        source=by_value,
        group_by=("client_id",),
        order_by=(f"{CLIENT_ORDER_COLUMNS[order_by]} DESC", "client_id ASC"),
        limit=limit + 1,
        offset=offset,
    )
    if search or agent_filters:
        return page, rows
    rolled = client_rollup_select(
        window, limit=limit, offset=offset, order_by=order_by, exact=exact, fallback=page
    )
    return rolled, rows


def _client_summary(rows: Rows) -> tuple[int, int]:
    """Totals when the page itself is empty (an offset past the end), so window totals are
    not available."""
    select = Select(columns=(("uniqExact(client_id)", ""), ("count()", "")), source=rows)
    clients, requests = execute(select, max_rows=1).rows[0]
    return int(clients), int(requests)


def _client_row(row: dict[str, Any]) -> dict[str, Any]:
    agent = row["top_user_agent"] or None
    parsed = parse_agent(agent) if agent else AgentInfo(None, None, None)
    return {
        "client_id": row["client_id"],
        "client_ip": present_ip(row["top_client_ip"]),
        "request_count": int(row["request_count"]),
        "error_count": int(row["error_count"]),
        "avg_response_time": row["avg_response_time"],
        "total_tokens": int(row["total_tokens"]),
        "total_cost": float(row["total_cost"]),
        "cache_hit_rate": row["cache_hit_rate"],
        "cost_per_1k_tokens": row["cost_per_1k_tokens"],
        "last_activity": row["last_activity"],
        "user_agent": agent,
        "device_type": row["top_device_type"] or parsed.device_type,
        "browser": row["top_browser"] or parsed.browser,
        "os": row["top_os"] or parsed.os,
        "unique_ips": int(row["unique_ips"]),
        "countries": list(row["countries"]),
    }


def client_analytics(
    window: Window,
    *,
    limit: int,
    offset: int,
    order_by: str,
    search: str | None = None,
    agent_filters: dict[str, str] | None = None,
    exact: bool = False,
) -> dict[str, Any]:
    """A page of clients (API keys) ranked by ``order_by`` (ties by client_id, so pages
    never overlap or skip), with totals over every matching client."""
    page, matching_rows = client_analytics_select(
        window,
        limit=limit,
        offset=offset,
        order_by=order_by,
        search=search,
        agent_filters=agent_filters,
        exact=exact,
    )
    rows = execute(page, max_rows=limit + 1).dicts()
    has_more = len(rows) > limit
    rows = rows[:limit]
    if rows:
        total_clients, total_requests = int(rows[0]["all_clients"]), int(rows[0]["all_requests"])
    elif offset:
        total_clients, total_requests = _client_summary(matching_rows)
    else:
        total_clients, total_requests = 0, 0
    return {
        "clients": [_client_row(row) for row in rows],
        "summary": {"total_clients": total_clients, "total_requests": total_requests},
        "has_more": has_more,
    }
