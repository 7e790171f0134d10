"""The query package's printer and runner, table-driven: identifiers come from the registry,
every value is a bound parameter, no data query can be printed without a project scope,
and the runner takes nothing but printed queries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from analytics.query.planner import RAW, Plan, plan
from analytics.query.printer import Binder, PrintedQuery, filter_sql, guard_clauses, print_plan
from analytics.query.registry import DIMENSIONS, METRICS
from analytics.query.runner import run
from analytics.query.scope import ProjectScope
from analytics.query.series import AnalyticsQuery, bucket_list, main_select, ranking_select
from analytics.query.tree import (
    Condition,
    FilterLeaf,
    FilterNode,
    Rows,
    Select,
    UnscopedSystemQuery,
    system_rows,
)

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


def printed(tree) -> PrintedQuery:
    return print_plan(plan(tree))


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
            FilterLeaf("tag:cost.center-id", "starts_with", "cc'"),
            "startsWith(tags[{tag_636f73742e63656e7465722d6964:String}], {f1:String})",
            {"tag_636f73742e63656e7465722d6964": "cost.center-id", "f1": "cc'"},
        ),
        (
            FilterLeaf("tag:env", "is_empty", True),
            "tags[{tag_656e76:String}] = {f1:String}",
            {"tag_656e76": "env", "f1": ""},
        ),
        (
            FilterLeaf("routing_decision", "in", ("fallback", "cached")),
            "routing_decision IN {f1:Array(String)}",
            {"f1": ["fallback", "cached"]},
        ),
        (FilterLeaf("is_streaming", "eq", True), "is_streaming = {f1:Bool}", {"f1": True}),
        (
            FilterLeaf("status_class", "eq", "5xx"),
            "concat(toString(intDiv(status_code, 100)), 'xx') = {f1:String}",
            {"f1": "5xx"},
        ),
    ],
)
def test_each_operator_prints_registry_sql_with_a_bound_value(leaf, sql, params):
    binder = Binder()
    assert filter_sql(leaf, binder) == sql
    assert binder.params == params


def test_boolean_trees_nest_and_number_parameters_in_order():
    tree = FilterNode(
        "or",
        (
            FilterLeaf("method", "eq", "GET"),
            FilterNode("not", (FilterLeaf("country_code", "eq", "US"),)),
        ),
    )
    binder = Binder()
    assert (
        filter_sql(tree, binder) == "((method = {f1:String}) OR (NOT (country_code = {f2:String})))"
    )
    assert binder.params == {"f1": "GET", "f2": "US"}


def test_main_query_carries_the_tenant_guard_first_and_only_placeholders():
    hostile = "'); DROP TABLE gateway_analytics; --"
    out = printed(
        main_select(
            query(
                metrics=tuple(METRICS),
                group_by=("country_code", "status_class"),
                filters=FilterNode("and", (FilterLeaf("path", "eq", hostile),)),
            )
        )
    )
    assert "WHERE (project_id IN {scope_project_ids:Array(UUID)}) AND (timestamp >= " in out.sql
    assert "GROUP BY GROUPING SETS ((bucket, g0, g1), (g0, g1), ())" in out.sql
    assert hostile not in out.sql
    assert hostile in out.params.values()
    assert out.params["scope_project_ids"] == [PROJECT]
    for metric in METRICS.values():
        if not metric.derived_from:
            assert f"{metric.sql} AS m_{metric.name}" in out.sql


def test_all_projects_scope_prints_no_project_condition_and_empty_scope_matches_nothing():
    everything = printed(main_select(query(scope=ProjectScope.all_projects()))).sql
    assert "project_id" not in everything.split("WHERE")[1]
    assert "WHERE (0) AND" in printed(main_select(query(scope=ProjectScope(project_ids=())))).sql
    assert guard_clauses(Rows(ProjectScope(project_ids=()), START, END), Binder())[0] == "0"


@pytest.mark.parametrize("not_a_scope", [None, [PROJECT], "all", {"project_ids": None}])
def test_no_data_query_can_be_described_without_a_scope(not_a_scope):
    with pytest.raises(TypeError, match="ProjectScope"):
        Rows(not_a_scope, START, END)  # type: ignore[arg-type]


def test_the_runner_takes_only_printed_queries():
    with pytest.raises(TypeError, match="PrintedQuery"):
        run("SELECT 1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="printer"):
        PrintedQuery("SELECT 1", {}, "raw")


def test_code_named_parameters_cannot_be_bound_twice_with_different_values():
    rows = Rows(
        ProjectScope.only([PROJECT]),
        START,
        END,
        conditions=(Condition.of("1 = {start_time:UInt8}", start_time=1),),
    )
    with pytest.raises(ValueError, match="start_time"):
        printed(Select(columns=(("count()", ""),), source=rows))


def test_conditions_on_table_rows_must_live_in_rows():
    select = Select(
        columns=(("count()", ""),),
        source=Rows(ProjectScope.only([PROJECT]), START, END),
        where=(Condition("is_bot"),),
    )
    with pytest.raises(ValueError, match=r"Rows\.conditions"):
        printed(select)


def test_unscoped_system_queries_state_a_purpose_and_read_all_projects():
    select = Select(columns=(("count()", ""),), source=system_rows(START, END))
    assert "project_id" not in printed(UnscopedSystemQuery("why", select)).sql
    with pytest.raises(ValueError, match="purpose"):
        UnscopedSystemQuery("  ", select)
    scoped = Select(
        columns=(("count()", ""),), source=Rows(ProjectScope.only([PROJECT]), START, END)
    )
    with pytest.raises(ValueError, match="all projects"):
        UnscopedSystemQuery("why", scoped)


def test_the_plan_names_its_storage_and_a_bucket_list_reads_no_table():
    chosen = plan(main_select(query(exact=True)))  # a covered query would read a rollup
    assert chosen.storage is RAW
    assert chosen.source == "raw"
    assert print_plan(chosen).source == "raw"
    assert "FROM gateway_analytics\n" in print_plan(chosen).sql
    listing = plan(bucket_list(query()))
    assert listing.storage is None
    assert "gateway_analytics" not in print_plan(listing).sql
    with pytest.raises(ValueError, match="storage"):
        print_plan(Plan(query=main_select(query()), storage=None))


def test_ranking_and_top_group_folding():
    q = query(group_by=("model_name",), top_n=3, order_by="p95_response_time", exact=True)
    ranking = printed(ranking_select(q))
    assert "quantileExactOrNull(0.95)(response_time_ms) AS rank_value" in ranking.sql
    assert ranking.sql.endswith("LIMIT {row_limit:UInt64}")
    assert ranking.params["row_limit"] == 4
    main = printed(main_select(q, top_groups=[("a",), ("b",)]))
    assert "toString(model_name) IN {top_groups:Array(String)}" in main.sql
    assert main.params["top_groups"] == ["a", "b"]
    two = printed(
        main_select(query(group_by=("model_name", "method"), top_n=2), top_groups=[("a", "GET")])
    )
    assert "IN {top_groups:Array(Tuple(String, String))}" in two.sql


def test_nested_selects_bind_their_limits_apart():
    inner = Select(
        columns=(("path", ""),),
        source=Rows(ProjectScope.only([PROJECT]), START, END),
        group_by=("path",),
        limit=10,
    )
    out = printed(Select(columns=(("count()", ""),), source=inner, limit=5))
    assert out.params["row_limit"] == 5
    assert out.params["row_limit_1"] == 10


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
    main = printed(main_select(query(bucket=bucket, timezone="Europe/Berlin")))
    assert f"{expression} AS bucket" in main.sql
    assert main.params["tz"] == "Europe/Berlin"
    listing = printed(bucket_list(query(bucket=bucket)))
    assert expression.replace("timestamp", "instant") in listing.sql
