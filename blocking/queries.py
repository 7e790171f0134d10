"""Query trees for ``GET /gateway/blocking-stats``: the blocking column sets and shapes.

Every query reads the caller's ``Rows`` (the printer adds the tenant guard and the time
range); identifiers are fixed here, and every value (including rule targets) is a bound
``{name:Type}`` parameter. The time series uses the shared bucket module, so it follows
the request's time zone like every other chart (DST days included).
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any

from analytics.query.buckets import bucket_sql, format_time
from analytics.query.planner import plan
from analytics.query.registry import BUCKETS
from analytics.query.rollups import BLOCKED_ONLY, RULE_ATTRIBUTED
from analytics.query.runner import execute
from analytics.query.scope import ProjectScope
from analytics.query.tree import BucketList, Condition, Coverage, Rows, Select, Window
from blocking import validation

__all__ = ["BUCKETS", "RuleTarget", "StatsQuery"]


@dataclass(frozen=True)
class StatsQuery:
    scope: ProjectScope
    start: datetime
    end: datetime
    limit: int
    bucket: str
    model_ids: tuple[uuid.UUID, ...] = ()
    endpoint_ids: tuple[uuid.UUID, ...] = ()
    timezone: str = "UTC"
    exact: bool = False  # read raw rows even where a rollup answers

    def rows(self, *conditions: Condition) -> Rows:
        window = Window(self.scope, self.start, self.end, self.model_ids, self.endpoint_ids)
        return window.rows(*conditions)

    def blocked_rows(self) -> Rows:
        """Blocked rows as a registry filter (not a code-written condition), which the
        blocked rollup (``blocked_15m``, a view of blocked rows only) can answer."""
        return replace(self.rows(), filters=BLOCKED_ONLY)


BLOCKED = Condition("is_blocked")


def _on_rollups(*selects: Select) -> bool:
    """Whether the planner answers every one of ``selects`` from a rollup."""
    return all(plan(select).storage.rollup is not None for select in selects)


def summary_select(query: StatsQuery) -> Select:
    return Select(
        columns=(
            ("count()", "total_requests"),
            ("countIf(is_blocked)", "total_blocked"),
            ("uniqExactIf(client_ip, is_blocked AND client_ip != '')", "unique_blocked_ips"),
        ),
        source=query.rows(),
    )


def totals_select(query: StatsQuery) -> Select:
    """Requests and blocked requests, as the series rollup can answer them."""
    return Select(
        columns=(("count()", "total_requests"), ("countIf(is_blocked)", "total_blocked")),
        source=query.rows(),
        metric_columns=MappingProxyType(
            {"total_requests": "total_requests", "total_blocked": "blocked_requests"}
        ),
        coverage=Coverage(exact=query.exact),
    )


def unique_blocked_ips_select(query: StatsQuery) -> Select:
    """Distinct non-empty IPs among blocked rows, exactly: the blocked rollup's rows
    grouped by IP, then counted."""
    per_ip = Select(
        columns=(("client_ip", ""), ("count()", "blocked")),
        source=query.blocked_rows(),
        group_by=("client_ip",),
        metric_columns=MappingProxyType({"blocked": "blocked_rows"}),
        coverage=Coverage(dimensions=("client_ip",), exact=query.exact),
    )
    return Select(
        columns=(("uniqExactIf(client_ip, client_ip != '')", "unique_blocked_ips"),),
        source=per_ip,
    )


def summary(query: StatsQuery) -> dict[str, int]:
    """Totals from the series rollup and distinct blocked IPs from the blocked rollup when
    both answer; otherwise today's one scan of raw rows (``summary_select``)."""
    totals, ips = totals_select(query), unique_blocked_ips_select(query)
    if _on_rollups(totals, ips):
        row = {
            **execute(totals, max_rows=1).dicts()[0],
            **execute(ips, max_rows=1).dicts()[0],
        }
    else:
        row = execute(summary_select(query), max_rows=1).dicts()[0]
    return {key: int(value) for key, value in row.items()}


def time_series_select(query: StatsQuery) -> Select:
    """Per bucket of the request's zone; the series rollup answers it (its n and blocked
    atoms) for 15-minute or coarser buckets, the same SQL over raw rows otherwise."""
    return Select(
        columns=(
            (bucket_sql(query.bucket), "bucket"),
            ("count()", "total_requests"),
            ("countIf(is_blocked)", "blocked_requests"),
        ),
        source=query.rows(),
        group_by=("bucket",),
        order_by=("bucket",),
        params=MappingProxyType({"tz": query.timezone}),
        metric_columns=MappingProxyType(
            {"total_requests": "total_requests", "blocked_requests": "blocked_requests"}
        ),
        coverage=Coverage(bucket=query.bucket, timezone=query.timezone, exact=query.exact),
    )


def time_series(query: StatsQuery) -> list[dict[str, Any]]:
    """Blocked and total requests per bucket of the request's zone, every bucket in range
    (gaps are zeros)."""
    select = time_series_select(query)
    buckets = [
        row[0]
        for row in execute(BucketList(query.start, query.end, query.bucket, query.timezone)).rows
    ]
    found = {row["bucket"]: row for row in execute(select, max_rows=len(buckets) + 1).dicts()}
    return [
        {
            "timestamp": format_time(start, query.timezone),
            "blocked_requests": int(found.get(start, {}).get("blocked_requests", 0)),
            "total_requests": int(found.get(start, {}).get("total_requests", 0)),
        }
        for start in buckets
    ]


def blocked_ips_select(query: StatsQuery) -> Select:
    return Select(
        columns=(
            ("client_ip", ""),
            ("count()", "block_count"),
            ("arraySort(groupUniqArrayIf(block_reason, block_reason != ''))", "reasons"),
            ("min(timestamp)", "first_blocked"),
            ("max(timestamp)", "last_blocked"),
        ),
        source=query.rows(BLOCKED),
        group_by=("client_ip",),
        order_by=("block_count DESC", "client_ip"),
        limit=query.limit,
    )


def blocked_ips_rollup_select(query: StatsQuery) -> Select:
    """``blocked_ips_select`` shaped for the blocked rollup: counts and first/last times
    per (IP, reason) from merged states, then per IP; that raw tree is the fallback."""
    per_reason = Select(
        columns=(
            ("client_ip", ""),
            ("block_reason", ""),
            ("count()", "blocked"),
            ("min(timestamp)", "first_seen"),
            ("max(timestamp)", "last_seen"),
        ),
        source=query.blocked_rows(),
        group_by=("client_ip", "block_reason"),
        metric_columns=MappingProxyType(
            {
                "blocked": "blocked_rows",
                "first_seen": "blocked_first_seen",
                "last_seen": "blocked_last_seen",
            }
        ),
        coverage=Coverage(dimensions=("client_ip", "block_reason"), exact=query.exact),
    )
    return Select(
        columns=(
            ("client_ip", ""),
            ("sum(blocked)", "block_count"),
            ("arraySort(groupUniqArrayIf(block_reason, block_reason != ''))", "reasons"),
            ("min(first_seen)", "first_blocked"),
            ("max(last_seen)", "last_blocked"),
        ),
        source=per_reason,
        group_by=("client_ip",),
        order_by=("block_count DESC", "client_ip"),
        limit=query.limit,
        fallback=blocked_ips_select(query),
    )


def blocked_ips(query: StatsQuery) -> list[dict[str, Any]]:
    return execute(blocked_ips_rollup_select(query), max_rows=query.limit).dicts()


def block_reasons_select(query: StatsQuery) -> Select:
    return Select(
        columns=(("block_reason", ""), ("count()", "count")),
        source=query.rows(BLOCKED),
        group_by=("block_reason",),
        order_by=("count DESC", "block_reason"),
        limit=query.limit,
    )


def block_reasons_rollup_select(query: StatsQuery) -> Select:
    """``block_reasons_select`` over the blocked rollup, with that raw tree as fallback."""
    return Select(
        columns=(("block_reason", ""), ("count()", "count")),
        source=query.blocked_rows(),
        group_by=("block_reason",),
        order_by=("count DESC", "block_reason"),
        limit=query.limit,
        metric_columns=MappingProxyType({"count": "blocked_rows"}),
        coverage=Coverage(dimensions=("block_reason",), exact=query.exact),
        fallback=block_reasons_select(query),
    )


def block_reasons(query: StatsQuery) -> list[dict[str, Any]]:
    return execute(block_reasons_rollup_select(query), max_rows=query.limit).dicts()


def rule_matches_select(query: StatsQuery, max_rules: int) -> Select:
    """Per rule: requests attributed to it and the last one; from the rule rollup
    (``rules_15m``) where it answers, else raw rows."""
    return Select(
        columns=(
            ("block_rule_id", ""),
            ("count()", "match_count"),
            ("max(timestamp)", "last_matched"),
        ),
        source=query.rows(RULE_ATTRIBUTED),
        group_by=("block_rule_id",),
        order_by=("match_count DESC",),
        limit=max_rules,
        metric_columns=MappingProxyType(
            {"match_count": "rule_matches", "last_matched": "rule_last_matched"}
        ),
        coverage=Coverage(dimensions=("block_rule_id",), exact=query.exact),
    )


def rule_matches(query: StatsQuery, max_rules: int) -> dict[uuid.UUID, tuple[int, datetime]]:
    """Requests attributed to each rule (``block_rule_id``) in scope and range."""
    select = rule_matches_select(query, max_rules)
    return {
        uuid.UUID(str(rule_id)): (int(count), last)
        for rule_id, count, last in execute(select, max_rows=max_rules).rows
    }


@dataclass(frozen=True)
class RuleTarget:
    """What a rule aims at, for effectiveness: the requests it should block."""

    rule_id: uuid.UUID
    rule_type: str
    config: dict[str, Any]
    project_id: uuid.UUID | None
    endpoint_id: uuid.UUID | None


def has_static_targets(rule_type: str) -> bool:
    """Rate-based rules target whoever exceeds a rate, which a request row alone cannot
    show; their effectiveness is null."""
    return rule_type in (
        validation.IP_BLOCKING,
        validation.COUNTRY_BLOCKING,
        validation.USER_AGENT_BLOCKING,
    )


def _ipv6_bounds(entry: str) -> tuple[str, str]:
    """An IP or CIDR as an inclusive IPv6 range (IPv4 as IPv4-mapped, as ``toIPv6`` maps
    IPv4 strings)."""
    network = ipaddress.ip_network(entry, strict=False)
    low, high = network.network_address, network.broadcast_address
    if network.version == 4:
        return f"::ffff:{low}", f"::ffff:{high}"
    return str(low), str(high)


def _target_clause(target: RuleTarget, index: int, params: dict[str, Any]) -> str | None:
    name = f"r{index}"
    parts: list[str] = []
    if target.project_id is not None:
        parts.append(f"project_id = {{{name}_project:UUID}}")
        params[f"{name}_project"] = target.project_id
    if target.endpoint_id is not None:
        parts.append(f"endpoint_id = {{{name}_endpoint:UUID}}")
        params[f"{name}_endpoint"] = target.endpoint_id
    config = target.config
    if target.rule_type == validation.IP_BLOCKING:
        bounds = [_ipv6_bounds(entry) for entry in config.get("ip_addresses", [])]
        if not bounds:
            return None
        params[f"{name}_low"] = [low for low, _ in bounds]
        params[f"{name}_high"] = [high for _, high in bounds]
        parts.append(
            "(isIPv4String(client_ip) OR isIPv6String(client_ip)) AND arrayExists("
            "(lo, hi) -> toIPv6OrZero(client_ip) >= lo AND toIPv6OrZero(client_ip) <= hi,"
            f" {{{name}_low:Array(IPv6)}}, {{{name}_high:Array(IPv6)}})"
        )
    elif target.rule_type == validation.COUNTRY_BLOCKING:
        params[f"{name}_countries"] = list(config.get("countries", []))
        parts.append(f"has({{{name}_countries:Array(String)}}, toString(country_code))")
    elif target.rule_type == validation.USER_AGENT_BLOCKING:
        params[f"{name}_patterns"] = list(config.get("patterns", []))
        if config.get("match_type") == "regex":
            parts.append(
                f"arrayExists(p -> match(user_agent, p), {{{name}_patterns:Array(String)}})"
            )
        else:
            parts.append(
                f"arrayExists(p -> position(user_agent, p) > 0, {{{name}_patterns:Array(String)}})"
            )
    else:
        return None
    return " AND ".join(f"({p})" for p in parts)


def rule_targets_select(
    query: StatsQuery, targets: list[RuleTarget]
) -> tuple[Select | None, list[uuid.UUID]]:
    """One scan counting, per rule with static targets, the requests it targets and how
    many of those were blocked (columns t<i>, b<i>); None when no rule has targets."""
    params: dict[str, Any] = {}
    columns: list[tuple[str, str]] = []
    indexed: list[uuid.UUID] = []
    for index, target in enumerate(targets):
        clause = _target_clause(target, index, params)
        if clause is None:
            continue
        columns.append((f"countIf({clause})", f"t{index}"))
        columns.append((f"countIf(is_blocked AND ({clause}))", f"b{index}"))
        indexed.append(target.rule_id)
    if not columns:
        return None, []
    select = Select(columns=tuple(columns), source=query.rows(), params=MappingProxyType(params))
    return select, indexed


def rule_target_counts(
    query: StatsQuery, targets: list[RuleTarget]
) -> dict[uuid.UUID, tuple[int, int]]:
    """For each rule: (requests matching its targets, of those how many were blocked),
    in one scan."""
    select, indexed = rule_targets_select(query, targets)
    if select is None:
        return {}
    row = execute(select, max_rows=1).rows[0]
    return {rule_id: (int(row[2 * i]), int(row[2 * i + 1])) for i, rule_id in enumerate(indexed)}
