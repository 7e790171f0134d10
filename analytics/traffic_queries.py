"""SQL for ``GET /gateway/top-routes`` and ``GET /gateway/client-analytics``.

Each endpoint is one SELECT over ``gateway_analytics`` built from the tenant guard
(``base_conditions``), registry metric expressions and constant maps below; every user
value is a bound parameter. Totals for ``percent`` and ``summary`` come from window
functions over the grouped rows, evaluated before ``LIMIT``, so they count every matching
row rather than the returned top N, without a second scan.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from analytics.access import present_ip
from analytics.paths import template_sql
from analytics.registry import METRICS
from analytics.schema import TABLE
from analytics.scope import Conditions, ProjectScope, base_conditions
from analytics.useragent import AgentInfo, parse_agent
from analytics.useragent import agent_value as _agent_value
from budmetrics_site.clickhouse.query import run_select

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


@dataclass(frozen=True)
class Window:
    """Scope, time range and id filters every traffic query shares."""

    scope: ProjectScope
    start: datetime
    end: datetime
    model_ids: Sequence[uuid.UUID] = ()
    endpoint_ids: Sequence[uuid.UUID] = ()

    def conditions(self) -> Conditions:
        return base_conditions(
            self.scope,
            self.start,
            self.end,
            model_ids=self.model_ids,
            endpoint_ids=self.endpoint_ids,
        )


# --- Top routes ---------------------------------------------------------------------------


def build_top_routes_sql(
    window: Window,
    *,
    limit: int,
    order_by: str,
    method: str | None = None,
    path: str | None = None,
    route: str | None = None,
    group_ids: bool = True,
) -> tuple[str, dict[str, Any]]:
    """One GROUP BY (route template, method), ranked by ``order_by``; window totals give
    ``percent`` and the summary over all routes."""
    route_sql = template_sql("path") if group_ids else "path"
    conditions = window.conditions()
    if method:
        conditions.add("method = {method:String}", method=method)
    if path:
        conditions.add("path = {raw_path:String}", raw_path=path)
    if route:
        conditions.add(f"{template_sql('path')} = {{route:String}}", route=route)
    order_column = ROUTE_ORDER_COLUMNS[order_by]
    # Two stages: group the rows by raw (path, method) first (far fewer groups than rows),
    # then template the distinct paths and re-aggregate, so the regexes run once per
    # distinct path instead of once per row. Counts and sums add up exactly; the mean is
    # sum / count (what avg computes); percentiles merge quantileExact states, which keep
    # every value, so they stay exact.
    sql = f"""
SELECT
    {route_sql} AS route,
    method,
    sum(rows) AS request_count,
    sum(errors) AS error_count,
    if(request_count = 0, NULL, error_count / request_count) AS error_rate,
    if(request_count = 0, NULL, sum(response_time_sum) / request_count) AS avg_response_time,
    quantilesExactMerge(0.95, 0.99)(response_times) AS percentiles,
    percentiles[1] AS p95_response_time,
    percentiles[2] AS p99_response_time,
    sum(tokens) AS total_tokens,
    sum(request_count) OVER () AS all_requests,
    count() OVER () AS all_routes
FROM (
    SELECT
        path,
        method,
        {METRICS["total_requests"].sql} AS rows,
        {METRICS["error_count"].sql} AS errors,
        sum(toUInt64(response_time_ms)) AS response_time_sum,
        quantilesExactState(0.95, 0.99)(response_time_ms) AS response_times,
        {METRICS["total_tokens"].sql} AS tokens
    FROM {TABLE}
    WHERE {conditions.sql()}
    GROUP BY path, method
)
GROUP BY route, method
ORDER BY {order_column} DESC, route ASC, method ASC
LIMIT {{limit:UInt32}}"""  # noqa: S608 - see module docstring
    return sql, {**conditions.params, "limit": limit}


def top_routes(window: Window, **options: Any) -> dict[str, Any]:
    """Routes ranked by ``order_by`` with their share of all matching requests."""
    sql, params = build_top_routes_sql(window, **options)
    rows = run_select(sql, params, max_rows=options["limit"]).dicts()
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


def _client_conditions(
    window: Window,
    *,
    search: str | None,
    agent_filters: dict[str, str],
) -> Conditions:
    """Rows of identified clients matching the search and device/browser/os filters. A
    filter matches the stored field case-insensitively, or, where the gateway stored
    nothing, the value ua-parser reads from the row's user agent."""
    conditions = window.conditions()
    conditions.add("client_id != ''")
    if search:
        conditions.add("positionCaseInsensitiveUTF8(client_id, {search:String}) > 0", search=search)
    if not agent_filters:
        return conditions
    matching = _user_agents_matching(conditions, agent_filters)
    for column, value in agent_filters.items():
        conditions.add(
            f"lowerUTF8({column}) = lowerUTF8({{{column}:String}})"
            f" OR ({column} = '' AND user_agent IN {{{column}_agents:Array(String)}})",
            **{column: value, f"{column}_agents": matching[column]},
        )
    return conditions


def _user_agents_matching(
    conditions: Conditions, agent_filters: dict[str, str]
) -> dict[str, list[str]]:
    """For each filter, the distinct user agents (of rows lacking that stored field) whose
    parsed value equals the filter value."""
    empty_any = " OR ".join(f"{column} = ''" for column in agent_filters)
    where = f"{conditions.sql()} AND ({empty_any}) AND user_agent != ''"
    sql = f"SELECT DISTINCT user_agent FROM {TABLE} WHERE {where}"  # noqa: S608
    agents = [
        row[0] for row in run_select(sql, conditions.params, max_rows=MAX_PARSED_USER_AGENTS).rows
    ]
    matching: dict[str, list[str]] = {column: [] for column in agent_filters}
    for agent in agents:
        info = parse_agent(agent)
        for column, value in agent_filters.items():
            parsed = _agent_value(info, column)
            if parsed is not None and parsed.lower() == value.lower():
                matching[column].append(agent)
    return matching


def build_client_analytics_sql(
    window: Window,
    *,
    limit: int,
    offset: int,
    order_by: str,
    search: str | None = None,
    agent_filters: dict[str, str] | None = None,
) -> tuple[str, dict[str, Any], Conditions]:
    """One GROUP BY client_id page (``limit + 1`` rows to know whether there is more),
    with window totals for the summary. Device/browser/os filters may first read the
    distinct user agents to parse (see ``_client_conditions``). Returns the SQL, its
    parameters and the WHERE conditions (for the empty-page summary)."""
    conditions = _client_conditions(window, search=search, agent_filters=agent_filters or {})
    order_column = CLIENT_ORDER_COLUMNS[order_by]
    # Two stages: one scan groups the rows by (client_id, attribute) for each attribute
    # (GROUPING SETS), far cheaper than building a count map per row; then one GROUP BY
    # client_id sums the counts. Request metrics come from the (client_id, client_ip) sets,
    # which together hold every row exactly once.
    by_ip = _grouping_level("client_ip")
    by_country = _grouping_level("country_code")
    value_columns = ", ".join(_CLIENT_VALUE_COLUMNS)
    grouping_sets = ", ".join(f"(client_id, {column})" for column in _CLIENT_VALUE_COLUMNS)
    sql = f"""
SELECT
    client_id,
    {_most_frequent("client_ip")} AS top_client_ip,
    sumIf(rows, value_level = {by_ip}) AS request_count,
    sumIf(errors, value_level = {by_ip}) AS error_count,
    if(request_count = 0, NULL, sumIf(response_time_sum, value_level = {by_ip}) / request_count)
        AS avg_response_time,
    sumIf(tokens, value_level = {by_ip}) AS total_tokens,
    sumIf(cost_sum, value_level = {by_ip}) AS total_cost,
    max(last_seen) AS last_activity,
    {_most_frequent("user_agent")} AS top_user_agent,
    {_most_frequent("device_type")} AS top_device_type,
    {_most_frequent("browser")} AS top_browser,
    {_most_frequent("os")} AS top_os,
    uniqExactIf(client_ip, value_level = {by_ip} AND client_ip != '') AS unique_ips,
    arraySort(groupUniqArrayIf({MAX_COUNTRIES_PER_CLIENT})(
        country_code, value_level = {by_country} AND country_code != ''
    )) AS countries,
    count() OVER () AS all_clients,
    sum(request_count) OVER () AS all_requests
FROM (
    SELECT
        client_id,
        {value_columns},
        grouping({value_columns}) AS value_level,
        {METRICS["total_requests"].sql} AS rows,
        {METRICS["error_count"].sql} AS errors,
        sum(toUInt64(response_time_ms)) AS response_time_sum,
        {METRICS["total_tokens"].sql} AS tokens,
        {METRICS["total_cost"].sql} AS cost_sum,
        max(timestamp) AS last_seen
    FROM {TABLE}
    WHERE {conditions.sql()}
    GROUP BY GROUPING SETS ({grouping_sets})
)
GROUP BY client_id
ORDER BY {order_column} DESC, client_id ASC
LIMIT {{page_size:UInt32}} OFFSET {{offset:UInt64}}"""  # noqa: S608 - see module docstring
    return sql, {**conditions.params, "page_size": limit + 1, "offset": offset}, conditions


def _client_summary(conditions: Conditions) -> tuple[int, int]:
    """Totals when the page itself is empty (an offset past the end), so window totals are
    not available."""
    sql = f"SELECT uniqExact(client_id), count() FROM {TABLE} WHERE {conditions.sql()}"  # noqa: S608
    clients, requests = run_select(sql, conditions.params, max_rows=1).rows[0]
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
) -> dict[str, Any]:
    """A page of clients (API keys) ranked by ``order_by`` (ties by client_id, so pages
    never overlap or skip), with totals over every matching client."""
    sql, params, conditions = build_client_analytics_sql(
        window,
        limit=limit,
        offset=offset,
        order_by=order_by,
        search=search,
        agent_filters=agent_filters,
    )
    rows = run_select(sql, params, max_rows=limit + 1).dicts()
    has_more = len(rows) > limit
    rows = rows[:limit]
    if rows:
        total_clients, total_requests = int(rows[0]["all_clients"]), int(rows[0]["all_requests"])
    elif offset:
        total_clients, total_requests = _client_summary(conditions)
    else:
        total_clients, total_requests = 0, 0
    return {
        "clients": [_client_row(row) for row in rows],
        "summary": {"total_clients": total_clients, "total_requests": total_requests},
        "has_more": has_more,
    }
