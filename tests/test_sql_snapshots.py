"""The SQL every endpoint prints, as reviewed snapshots (syrupy): a change in generated SQL
shows up in review as a diff of ``tests/__snapshots__/test_sql_snapshots.ambr``.

Regenerate after an intended change with ``.venv/bin/pytest tests/test_sql_snapshots.py
--snapshot-update`` and read the diff before committing it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analytics.query import system
from analytics.query.planner import plan
from analytics.query.printer import print_plan
from analytics.query.rollups import ROLLUPS
from analytics.query.scope import ProjectScope
from analytics.query.series import (
    AnalyticsQuery,
    bucket_list,
    main_select,
    ranking_select,
    summary_select,
)
from analytics.query.tree import FilterLeaf, FilterNode, Window
from analytics.routes_clients.queries import (
    client_analytics_select,
    top_routes_query,
    top_routes_select,
)
from blocking import queries as blocking
from geo.queries import geo_stats_query, geo_stats_select

START = datetime(2024, 3, 30, tzinfo=UTC)
END = datetime(2024, 4, 1, tzinfo=UTC)
P1 = uuid.UUID("00000000-0000-4000-8000-000000000001")
P2 = uuid.UUID("00000000-0000-4000-8000-000000000002")
SCOPE = ProjectScope.only([P1, P2])
RULE = uuid.UUID("00000000-0000-4000-9000-000000000001")


def printed(tree: Any) -> dict[str, Any]:
    out = print_plan(plan(tree))
    return {"source": out.source, "sql": out.sql, "params": out.params}


def analytics_query(**overrides: Any) -> AnalyticsQuery:
    values: dict[str, Any] = {
        "scope": SCOPE,
        "start": START,
        "end": END,
        "bucket": "1h",
        "timezone": "Europe/Berlin",
        "metrics": ("total_requests", "error_rate", "p95_response_time", "requests_per_second"),
        "group_by": ("model_name",),
        "filters": FilterNode(
            "or",
            (
                FilterLeaf("country_code", "in", ("US", "DE")),
                FilterNode("not", (FilterLeaf("status_code", "gte", 500),)),
            ),
        ),
        "top_n": 5,
        "order_by": "total_requests",
        "include_other": True,
        "compare_previous": True,
    }
    values.update(overrides)
    return AnalyticsQuery(**values)


def stats_query(exact: bool = False) -> blocking.StatsQuery:
    return blocking.StatsQuery(
        scope=SCOPE,
        start=START,
        end=END,
        limit=10,
        bucket="1h",
        timezone="Asia/Kolkata",
        exact=exact,
    )


WINDOW = Window(scope=SCOPE, start=START, end=END, model_ids=(P2,))
ROLLUP_WINDOW = Window(
    scope=SCOPE, start=START + timedelta(minutes=7), end=END - timedelta(minutes=50)
)

CASES: dict[str, Any] = {
    "analytics_ranking": lambda: ranking_select(analytics_query()),
    "analytics_main": lambda: main_select(analytics_query(), [("gpt-4o",), ("claude",)]),
    "analytics_main_two_dimensions": lambda: main_select(
        analytics_query(group_by=("model_name", "method")), [("gpt-4o", "POST")]
    ),
    "analytics_main_ungrouped": lambda: main_select(analytics_query(group_by=(), top_n=None)),
    "analytics_main_llm_tags": lambda: main_select(
        analytics_query(
            metrics=("p95_ttft", "output_tokens_per_second", "fallback_rate", "cost_per_1k_tokens"),
            group_by=("tag:team", "routing_decision"),
            filters=FilterNode(
                "and",
                (
                    FilterLeaf("tag:team", "ne", "x'] OR 1=1 --"),
                    FilterLeaf("tag:cost.center-id", "is_empty", False),
                    FilterLeaf("finish_reason", "is_empty", False),
                ),
            ),
        ),
        [("search", "fallback")],
    ),
    "analytics_ranking_by_tag": lambda: ranking_select(
        analytics_query(group_by=("tag:team",), order_by="cache_hit_rate")
    ),
    "analytics_previous_period": lambda: summary_select(
        analytics_query(), datetime(2024, 3, 28, tzinfo=UTC), START
    ),
    "analytics_bucket_list": lambda: bucket_list(analytics_query()),
    # A request the series rollup covers, over an unaligned range: the aligned middle from
    # the rollup, the edges from raw rows as the same states, merged (issue 11).
    "analytics_main_from_rollup": lambda: main_select(
        analytics_query(
            start=START + timedelta(minutes=7),
            end=END - timedelta(minutes=50),
            timezone="Asia/Kathmandu",
            filters=FilterLeaf("model_provider", "in", ("openai", "anthropic")),
        ),
        [("gpt-4o",), ("claude",)],
    ),
    # The endpoints' queries filtered by model_ids, which geo_15m and routes_15m do not
    # cover: they run their raw fallback, the very SQL of the raw-shaped selects.
    "geographical_stats": lambda: geo_stats_query(
        WINDOW, limit=10, order_by="requests", country_code="DE"
    ),
    "top_routes": lambda: top_routes_query(
        WINDOW, limit=20, order_by="p95_time", method="POST", route="/v1/files/{id}"
    ),
    # Covered (no model_ids), over an unaligned range: one pass over the rollup's middle
    # and the raw edges as the same states (issue 11).
    "geographical_stats_from_rollup": lambda: geo_stats_query(
        ROLLUP_WINDOW, limit=10, order_by="requests", country_code="DE"
    ),
    "top_routes_from_rollup": lambda: top_routes_query(
        ROLLUP_WINDOW, limit=20, order_by="p95_time", method="POST", route="/v1/files/{id}"
    ),
    "client_analytics": lambda: client_analytics_select(
        WINDOW, limit=25, offset=50, order_by="cost", search="key_"
    )[0],
    "blocking_summary": lambda: blocking.summary_select(stats_query()),
    # exact=True: the raw SQL, unchanged since the series rollup answers this select
    "blocking_time_series": lambda: blocking.time_series_select(stats_query(exact=True)),
    "blocking_time_series_from_rollup": lambda: blocking.time_series_select(stats_query()),
    "blocking_totals_from_rollup": lambda: blocking.totals_select(stats_query()),
    "blocking_unique_blocked_ips_from_rollup": lambda: blocking.unique_blocked_ips_select(
        stats_query()
    ),
    "blocking_blocked_ips_from_rollup": lambda: blocking.blocked_ips_rollup_select(stats_query()),
    "blocking_block_reasons_from_rollup": lambda: blocking.block_reasons_rollup_select(
        stats_query()
    ),
    "client_analytics_from_rollup": lambda: client_analytics_select(
        Window(scope=SCOPE, start=START + timedelta(minutes=7), end=END),
        limit=25,
        offset=50,
        order_by="cost",
    )[0],
    "blocking_blocked_ips": lambda: blocking.blocked_ips_select(stats_query()),
    "blocking_block_reasons": lambda: blocking.block_reasons_select(stats_query()),
    "blocking_rule_matches": lambda: blocking.rule_matches_select(stats_query(), 100),
    "blocking_rule_targets": lambda: blocking.rule_targets_select(
        stats_query(),
        [
            blocking.RuleTarget(RULE, "ip_blocking", {"ip_addresses": ["10.0.0.0/8"]}, P1, None),
            blocking.RuleTarget(RULE, "country_blocking", {"countries": ["RU"]}, None, None),
            blocking.RuleTarget(
                RULE, "user_agent_blocking", {"patterns": ["bot"], "match_type": "regex"}, None, P2
            ),
        ],
    )[0],
    "system_active_projects": lambda: system.active_projects_query(START, END, 100),
    "system_rule_match_count": lambda: system.rule_match_query(RULE, START, END),
}


@pytest.mark.parametrize("name", CASES)
def test_printed_sql_matches_the_reviewed_snapshot(name: str, snapshot: Any) -> None:
    assert printed(CASES[name]()) == snapshot


@pytest.mark.parametrize("name", [n for n in CASES if not n.startswith(("system_", "analytics_b"))])
def test_every_endpoint_query_starts_with_the_tenant_guard(name: str) -> None:
    out = printed(CASES[name]())
    guard = "WHERE (project_id IN {scope_project_ids:Array(UUID)})"
    innermost_where = out["sql"].split("FROM gateway_analytics\n")[1].lstrip()
    assert innermost_where.startswith(guard)
    if out["source"] != "raw":  # a rollup plan reads the rollup too, guarded the same way
        rollup_where = out["sql"].split(f"FROM {ROLLUPS[out['source']].table}\n")[1].lstrip()
        assert rollup_where.startswith(guard)
    assert out["params"]["scope_project_ids"] == [P1, P2]


def test_uncovered_traffic_queries_run_their_raw_trees_unchanged() -> None:
    """An uncovered geo or top-routes request runs exactly today's raw-shaped tree."""
    geo = {"limit": 10, "order_by": "requests", "country_code": "DE"}
    assert plan(geo_stats_query(WINDOW, **geo)).query == geo_stats_select(WINDOW, **geo)
    routes = {"limit": 20, "order_by": "p95_time", "method": "POST", "route": "/v1/files/{id}"}
    assert plan(top_routes_query(WINDOW, **routes)).query == top_routes_select(WINDOW, **routes)
