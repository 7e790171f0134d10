"""The SQL printer, table-driven: identifiers come from the registry, every value is a
bound parameter, and no query can be printed without a project scope."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from analytics.query import (
    AnalyticsQuery,
    FilterLeaf,
    FilterNode,
    _Params,
    filter_sql,
    print_bucket_list,
    print_main,
    print_ranking,
)
from analytics.registry import DIMENSIONS, METRICS
from analytics.scope import ProjectScope, base_conditions

START = datetime(2024, 1, 1, tzinfo=UTC)
END = datetime(2024, 1, 2, tzinfo=UTC)
PROJECT = uuid.UUID("00000000-0000-4000-8000-000000000001")


def query(**overrides) -> AnalyticsQuery:
    values = {
        "scope": ProjectScope.only([PROJECT]),
        "start": START,
        "end": END,
        "bucket": "1h",
        "timezone": "UTC",
        "metrics": ("total_requests",),
    }
    values.update(overrides)
    return AnalyticsQuery(**values)


@pytest.mark.parametrize(
    ("leaf", "sql", "params"),
    [
        (FilterLeaf("country_code", "eq", "US"), "country_code = {f1:String}", {"f1": "US"}),
        (FilterLeaf("status_code", "gte", 500), "status_code >= {f1:Int64}", {"f1": 500}),
        (
            FilterLeaf("method", "in", ("GET", "POST")),
            "method IN {f1:Array(String)}",
            {"f1": ["GET", "POST"]},
        ),
        (
            FilterLeaf("model_id", "not_in", (str(PROJECT),)),
            "model_id NOT IN {f1:Array(UUID)}",
            {"f1": [str(PROJECT)]},
        ),
        (FilterLeaf("path", "contains", "x'"), "position(path, {f1:String}) > 0", {"f1": "x'"}),
        (FilterLeaf("path", "starts_with", "/v1"), "startsWith(path, {f1:String})", {"f1": "/v1"}),
        (FilterLeaf("path", "regex", "^/v1"), "match(path, {f1:String})", {"f1": "^/v1"}),
        (
            FilterLeaf("endpoint_id", "is_empty", True),
            "endpoint_id = {f1:UUID}",
            {"f1": DIMENSIONS["endpoint_id"].empty},
        ),
        (FilterLeaf("region", "is_empty", False), "region != {f1:String}", {"f1": ""}),
        (FilterLeaf("is_bot", "ne", True), "is_bot != {f1:Bool}", {"f1": True}),
        (
            FilterLeaf("status_class", "eq", "5xx"),
            "concat(toString(intDiv(status_code, 100)), 'xx') = {f1:String}",
            {"f1": "5xx"},
        ),
    ],
)
def test_each_operator_prints_registry_sql_with_a_bound_value(leaf, sql, params):
    bound: dict = {}
    assert filter_sql(leaf, _Params(bound)) == sql
    assert bound == params


def test_boolean_trees_nest_and_number_parameters_in_order():
    tree = FilterNode(
        "or",
        (
            FilterLeaf("method", "eq", "GET"),
            FilterNode("not", (FilterLeaf("country_code", "eq", "US"),)),
        ),
    )
    bound: dict = {}
    assert (
        filter_sql(tree, _Params(bound))
        == "((method = {f1:String}) OR (NOT (country_code = {f2:String})))"
    )
    assert bound == {"f1": "GET", "f2": "US"}


def test_main_query_carries_the_tenant_guard_and_only_placeholders():
    hostile = "'); DROP TABLE gateway_analytics; --"
    printed = print_main(
        query(
            metrics=tuple(METRICS),
            group_by=("country_code", "status_class"),
            filters=FilterNode("and", (FilterLeaf("path", "eq", hostile),)),
        )
    )
    assert "project_id IN {scope_project_ids:Array(UUID)}" in printed.sql
    assert "timestamp >= {start_time:DateTime64(3, 'UTC')}" in printed.sql
    assert "GROUP BY GROUPING SETS ((bucket, g0, g1), (g0, g1), ())" in printed.sql
    assert hostile not in printed.sql
    assert hostile in printed.params.values()
    assert printed.params["scope_project_ids"] == [PROJECT]
    for metric in METRICS.values():
        if not metric.derived_from:
            assert f"{metric.sql} AS m_{metric.name}" in printed.sql


def test_all_projects_scope_prints_no_project_condition_and_empty_scope_matches_nothing():
    assert (
        "project_id"
        not in print_main(query(scope=ProjectScope.all_projects())).sql.split("WHERE")[1]
    )
    assert "WHERE (0) AND" in print_main(query(scope=ProjectScope(project_ids=()))).sql


def test_no_query_without_a_scope():
    with pytest.raises(TypeError, match="ProjectScope"):
        base_conditions(None, START, END)  # type: ignore[arg-type]


def test_ranking_and_top_group_folding():
    q = query(group_by=("model_name",), top_n=3, order_by="p95_response_time")
    ranking = print_ranking(q)
    assert "quantileExactOrNull(0.95)(response_time_ms) AS rank_value" in ranking.sql
    assert ranking.sql.endswith("LIMIT {top_n_plus_one:UInt32}")
    assert ranking.params["top_n_plus_one"] == 4
    main = print_main(q, top_groups=[("a",), ("b",)])
    assert "toString(model_name) IN {top_groups:Array(String)}" in main.sql
    assert main.params["top_groups"] == ["a", "b"]
    two = print_main(query(group_by=("model_name", "method"), top_n=2), top_groups=[("a", "GET")])
    assert "IN {top_groups:Array(Tuple(String, String))}" in two.sql


@pytest.mark.parametrize(
    ("bucket", "expression"),
    [
        ("1m", "toStartOfInterval(timestamp, INTERVAL 1 MINUTE, {tz:String})"),
        ("6h", "toStartOfInterval(timestamp, INTERVAL 6 HOUR, {tz:String})"),
        ("1d", "toStartOfDay(timestamp, {tz:String})"),
        ("1w", "toDateTime(toMonday(timestamp, {tz:String}), {tz:String})"),
    ],
)
def test_buckets_are_computed_in_the_requested_zone(bucket, expression):
    printed = print_main(query(bucket=bucket, timezone="Europe/Berlin"))
    assert f"{expression} AS bucket" in printed.sql
    assert printed.params["tz"] == "Europe/Berlin"
    assert expression.replace("timestamp", "instant") in print_bucket_list(query(bucket=bucket)).sql
