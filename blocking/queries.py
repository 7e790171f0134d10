"""ClickHouse SQL for ``GET /gateway/blocking-stats``: the only place blocking SQL is written.

Every query starts from ``analytics.scope.base_conditions`` (project scope + time range),
identifiers are fixed here, and every value (including rule targets) is a bound
``{name:Type}`` parameter.
"""

from __future__ import annotations

import ipaddress
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from analytics.registry import BUCKETS
from analytics.scope import Conditions, ProjectScope, base_conditions
from blocking import validation
from budmetrics_site.clickhouse.query import run_select

TABLE = "gateway_analytics"
ZERO_UUID = uuid.UUID(int=0)

_EPOCH_MONDAY = datetime(1970, 1, 5, tzinfo=UTC)  # ClickHouse weeks start on Monday


@dataclass(frozen=True)
class StatsQuery:
    scope: ProjectScope
    start: datetime
    end: datetime
    limit: int
    bucket: str
    model_ids: tuple[uuid.UUID, ...] = ()
    endpoint_ids: tuple[uuid.UUID, ...] = ()


def _conditions(query: StatsQuery) -> Conditions:
    return base_conditions(
        query.scope,
        query.start,
        query.end,
        model_ids=query.model_ids,
        endpoint_ids=query.endpoint_ids,
    )


def _select(columns: str, where: Conditions, tail: str = "") -> str:
    """The one SQL printer here: ``columns`` and ``tail`` are this module's literals,
    ``where`` comes from ``base_conditions`` (tenant guard) with values bound."""
    return f"SELECT {columns} FROM {TABLE} WHERE {where.sql()}{tail}"  # noqa: S608 - see docstring


def bucket_starts(start: datetime, end: datetime, bucket: str) -> list[datetime]:
    """Every UTC bucket start in ``[start, end)``, aligned as ``toStartOfInterval`` aligns
    them (epoch multiples; weeks from Monday)."""
    seconds = BUCKETS[bucket][1]
    origin = _EPOCH_MONDAY if bucket == "1w" else datetime(1970, 1, 1, tzinfo=UTC)
    first = origin + timedelta(
        seconds=math.floor((start - origin).total_seconds() / seconds) * seconds
    )
    out = []
    current = first
    while current < end:
        out.append(current)
        current += timedelta(seconds=seconds)
    return out


def summary(query: StatsQuery) -> dict[str, int]:
    where = _conditions(query)
    sql = _select(
        "count() AS total_requests, countIf(is_blocked) AS total_blocked,"
        " uniqExactIf(client_ip, is_blocked AND client_ip != '') AS unique_blocked_ips",
        where,
    )
    row = run_select(sql, where.params, max_rows=1).dicts()[0]
    return {key: int(value) for key, value in row.items()}


def time_series(query: StatsQuery) -> list[dict[str, Any]]:
    where = _conditions(query)
    interval = BUCKETS[query.bucket][0]
    sql = _select(
        f"toStartOfInterval(timestamp, {interval}, 'UTC') AS bucket,"
        " count() AS total_requests, countIf(is_blocked) AS blocked_requests",
        where,
        " GROUP BY bucket ORDER BY bucket",
    )
    starts = bucket_starts(query.start, query.end, query.bucket)
    found = {
        _as_utc(row["bucket"]): row
        for row in run_select(sql, where.params, max_rows=len(starts) + 1).dicts()
    }
    return [
        {
            "timestamp": start,
            "blocked_requests": int(found.get(start, {}).get("blocked_requests", 0)),
            "total_requests": int(found.get(start, {}).get("total_requests", 0)),
        }
        for start in starts
    ]


def blocked_ips(query: StatsQuery) -> list[dict[str, Any]]:
    where = _conditions(query)
    where.add("is_blocked")
    sql = _select(
        "client_ip, count() AS block_count,"
        " arraySort(groupUniqArrayIf(block_reason, block_reason != '')) AS reasons,"
        " min(timestamp) AS first_blocked, max(timestamp) AS last_blocked",
        where,
        " GROUP BY client_ip ORDER BY block_count DESC, client_ip LIMIT {row_limit:UInt32}",
    )
    params = {**where.params, "row_limit": query.limit}
    return run_select(sql, params, max_rows=query.limit).dicts()


def block_reasons(query: StatsQuery) -> list[dict[str, Any]]:
    where = _conditions(query)
    where.add("is_blocked")
    sql = _select(
        "block_reason, count() AS count",
        where,
        " GROUP BY block_reason ORDER BY count DESC, block_reason LIMIT {row_limit:UInt32}",
    )
    params = {**where.params, "row_limit": query.limit}
    return run_select(sql, params, max_rows=query.limit).dicts()


def rule_matches(query: StatsQuery, max_rules: int) -> dict[uuid.UUID, tuple[int, datetime]]:
    """Requests attributed to each rule (``block_rule_id``) in scope and range."""
    where = _conditions(query)
    where.add("block_rule_id != {zero_uuid:UUID}", zero_uuid=ZERO_UUID)
    sql = _select(
        "block_rule_id, count() AS match_count, max(timestamp) AS last_matched",
        where,
        " GROUP BY block_rule_id ORDER BY match_count DESC LIMIT {row_limit:UInt32}",
    )
    params = {**where.params, "row_limit": max_rules}
    return {
        uuid.UUID(str(rule_id)): (int(count), last)
        for rule_id, count, last in run_select(sql, params, max_rows=max_rules).rows
    }


def rule_match_count(rule_id: uuid.UUID, start: datetime, end: datetime) -> int:
    """Requests attributed to one rule in ``[start, end)``, all projects (the staff-only
    admin page shows it)."""
    where = base_conditions(ProjectScope.all_projects(), start, end)
    where.add("block_rule_id = {rule_id:UUID}", rule_id=rule_id)
    return int(run_select(_select("count()", where), where.params, max_rows=1).rows[0][0])


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


def _target_clause(target: RuleTarget, index: int, conditions: Conditions) -> str | None:
    name = f"r{index}"
    parts: list[str] = []
    if target.project_id is not None:
        parts.append(f"project_id = {{{name}_project:UUID}}")
        conditions.params[f"{name}_project"] = target.project_id
    if target.endpoint_id is not None:
        parts.append(f"endpoint_id = {{{name}_endpoint:UUID}}")
        conditions.params[f"{name}_endpoint"] = target.endpoint_id
    config = target.config
    if target.rule_type == validation.IP_BLOCKING:
        bounds = [_ipv6_bounds(entry) for entry in config.get("ip_addresses", [])]
        if not bounds:
            return None
        conditions.params[f"{name}_low"] = [low for low, _ in bounds]
        conditions.params[f"{name}_high"] = [high for _, high in bounds]
        parts.append(
            "(isIPv4String(client_ip) OR isIPv6String(client_ip)) AND arrayExists("
            "(lo, hi) -> toIPv6OrZero(client_ip) >= lo AND toIPv6OrZero(client_ip) <= hi,"
            f" {{{name}_low:Array(IPv6)}}, {{{name}_high:Array(IPv6)}})"
        )
    elif target.rule_type == validation.COUNTRY_BLOCKING:
        conditions.params[f"{name}_countries"] = list(config.get("countries", []))
        parts.append(f"has({{{name}_countries:Array(String)}}, toString(country_code))")
    elif target.rule_type == validation.USER_AGENT_BLOCKING:
        conditions.params[f"{name}_patterns"] = list(config.get("patterns", []))
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


def rule_target_counts(
    query: StatsQuery, targets: list[RuleTarget]
) -> dict[uuid.UUID, tuple[int, int]]:
    """For each rule: (requests matching its targets, of those how many were blocked),
    in one scan."""
    where = _conditions(query)
    columns: list[str] = []
    indexed: list[uuid.UUID] = []
    for index, target in enumerate(targets):
        clause = _target_clause(target, index, where)
        if clause is None:
            continue
        columns.append(f"countIf({clause}) AS t{index}")
        columns.append(f"countIf(is_blocked AND ({clause})) AS b{index}")
        indexed.append(target.rule_id)
    if not columns:
        return {}
    sql = _select(", ".join(columns), where)
    row = run_select(sql, where.params, max_rows=1).rows[0]
    return {rule_id: (int(row[2 * i]), int(row[2 * i + 1])) for i, rule_id in enumerate(indexed)}


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
