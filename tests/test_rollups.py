"""Rollups (issue 11) on real chDB: the view fills them, the planner chooses them, and a
rollup answer equals the raw answer (exact metrics to the last unit, sketches within the
bound the registry states).

The property test runs a bounded number of examples (``ROLLUP_PROPERTY_EXAMPLES``,
default 12, derandomized so CI sees the same cases); each example inserts its own rows.
"""

from __future__ import annotations

import io
import logging
import math
import os
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics import schema
from analytics.query.planner import plan
from analytics.query.registry import METRICS, SKETCH_BOUNDS
from analytics.query.rollups import DAY_TIERS, FAMILIES, ROLLUPS, SERIES, day_tier
from analytics.query.runner import execute
from analytics.query.scope import ProjectScope
from analytics.query.series import AnalyticsQuery, main_select, run_analytics
from analytics.query.tree import Coverage, FilterLeaf, FilterNode, Rows, Select
from tests.conftest import clickhouse_client, insert_rows, make_row, truncate_clickhouse

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

# 2024-03-10 07:00 UTC: New York springs forward; the data spans it.
BASE = datetime(2024, 3, 8, 0, 0, tzinfo=UTC)
SPAN_MINUTES = 4 * 24 * 60
ZONES = ("UTC", "Asia/Kolkata", "Asia/Kathmandu", "America/New_York")
BUCKETS = ("15m", "30m", "1h", "6h", "12h", "1d", "1w")
MODELS = ("gpt", "claude", "llama")
EXACT_METRICS = [m for m in SERIES.metrics if m not in SKETCH_BOUNDS]
RANKABLE = ("total_requests", "error_count", "total_tokens", "blocked_requests")
QUANTILE_ERROR_MS = 210  # registry: SKETCH_BOUNDS


def analytics(client: Any, **body: Any) -> dict[str, Any]:
    response = client.post("/gateway/analytics", body, format="json")
    assert response.status_code == 200, response.json()
    return response.json()["data"]


# --- comparing a rollup answer with the raw answer ------------------------------------


def assert_metric_matches(name: str, rolled: Any, raw: Any) -> None:
    if raw is None or rolled is None:
        assert rolled == raw, name
        return
    if name in SKETCH_BOUNDS and name.startswith("unique_"):
        assert abs(rolled - raw) <= 0.01 * raw, name
    elif name in SKETCH_BOUNDS:
        assert abs(rolled - raw) <= QUANTILE_ERROR_MS, name
    elif METRICS[name].type == "integer":
        assert rolled == raw, name
    else:
        assert rolled == pytest.approx(raw, rel=1e-9, abs=1e-12), name


def assert_same_answer(rolled: Any, raw: Any) -> None:
    assert len(rolled.time_series) == len(raw.time_series)
    for a, b in zip(rolled.time_series, raw.time_series, strict=True):
        assert (a["timestamp"], a["groups"]) == (b["timestamp"], b["groups"])
        for name, value in b["metrics"].items():
            assert_metric_matches(name, a["metrics"][name], value)
    assert rolled.summary.keys() == raw.summary.keys()
    for name, value in raw.summary.items():
        if name == "previous_period":
            for key, previous in value["metrics"].items():
                if key == "total_errors":
                    assert rolled.summary[name]["metrics"][key] == previous
                else:
                    assert_metric_matches(key, rolled.summary[name]["metrics"][key], previous)
        elif name == "total_errors":
            assert rolled.summary[name] == value
        else:
            assert_metric_matches(name, rolled.summary[name], value)
    assert rolled.meta["groups"] == raw.meta["groups"]
    assert rolled.meta["truncated"] == raw.meta["truncated"]


# --- random rows and requests -------------------------------------------------------------

rows_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "minute": st.integers(0, SPAN_MINUTES - 1),
            "second": st.integers(0, 59),
            "model": st.sampled_from(MODELS),
            "status": st.sampled_from((200, 200, 201, 404, 429, 500)),
            "rt": st.integers(0, 40_000),
            "tokens": st.integers(0, 4_000_000),
            "cost": st.floats(0, 3, allow_nan=False),
            "client": st.sampled_from(("", "k1", "k2", "k3")),
            "blocked": st.booleans(),
            "streaming": st.booleans(),
            "ttft": st.integers(0, 2000),
            "routing": st.sampled_from(("", "primary", "fallback", "cached")),
            "finish": st.sampled_from(("", "stop", "length", "content_filter")),
        }
    ),
    min_size=1,
    max_size=40,
)


def to_row(spec: dict[str, Any]) -> dict[str, Any]:
    moment = BASE + timedelta(minutes=spec["minute"], seconds=spec["second"])
    return make_row(
        timestamp=moment,
        model_name=spec["model"],
        model_provider=spec["model"] + "-co",
        status_code=spec["status"],
        response_time_ms=spec["rt"],
        total_tokens=spec["tokens"],
        input_tokens=spec["tokens"] // 3,
        output_tokens=spec["tokens"] - spec["tokens"] // 3,
        cost=spec["cost"],
        client_id=spec["client"],
        client_ip=spec["client"].replace("k", "10.0.0."),
        is_blocked=spec["blocked"],
        is_streaming=spec["streaming"],
        ttft_ms=spec["ttft"],
        routing_decision=spec["routing"],
        finish_reason=spec["finish"],
    )


filters_strategy = st.one_of(
    st.none(),
    st.just(FilterLeaf("model_name", "in", ("gpt", "llama"))),
    st.just(FilterNode("not", (FilterLeaf("model_provider", "eq", "claude-co"),))),
    st.just(
        FilterNode(
            "or",
            (FilterLeaf("model_name", "eq", "gpt"), FilterLeaf("model_provider", "ne", "gpt-co")),
        )
    ),
)


@st.composite
def requests_strategy(draw: Any) -> AnalyticsQuery:
    bucket = draw(st.sampled_from(BUCKETS))
    start_minute = draw(st.integers(2 * 24 * 60 - 600, 3 * 24 * 60))
    length = draw(st.integers(45, 72 * 60))  # up to 3 days: the 6h and 1d tiers too
    group_by = tuple(draw(st.sampled_from(((), ("model_name",), ("model_provider",)))))
    top_n = draw(st.sampled_from((None, 1, 2))) if group_by else None
    metrics = tuple(
        draw(
            st.lists(
                st.sampled_from([*SERIES.metrics, "requests_per_second"]),
                min_size=1,
                max_size=6,
                unique=True,
            )
        )
    )
    start = BASE + timedelta(minutes=start_minute, seconds=draw(st.sampled_from((0, 17))))
    return AnalyticsQuery(
        scope=ProjectScope.all_projects(),
        start=start,
        end=start + timedelta(minutes=length),
        bucket=bucket,
        timezone=draw(st.sampled_from(ZONES)),
        metrics=metrics,
        group_by=group_by,
        filters=draw(filters_strategy),
        fill_gaps=draw(st.booleans()),
        top_n=top_n,
        order_by=draw(st.sampled_from(RANKABLE)) if top_n else None,
        include_other=draw(st.booleans()) if top_n else False,
        compare_previous=draw(st.booleans()),
    )


@settings(
    max_examples=int(os.environ.get("ROLLUP_PROPERTY_EXAMPLES", "12")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=rows_strategy, late=rows_strategy, query=requests_strategy())
def test_rollup_path_equals_raw_path(
    django_db_blocker: Any, rows: list, late: list, query: AnalyticsQuery
) -> None:
    """Random rows, then late rows for old buckets in a second insert, then a random
    covered request: the rollup answer equals the raw answer."""
    with django_db_blocker.unblock():
        truncate_clickhouse()
        insert_rows([to_row(r) for r in rows])
        insert_rows([to_row(r) for r in late])
        rolled = run_analytics(query)
        raw = run_analytics(replace(query, exact=True))
        truncate_clickhouse()
    assert rolled.meta["source"] == SERIES.name, plan(main_select(query)).refused
    assert raw.meta["source"] == "raw"
    assert rolled.meta["approximate"] == {
        m: SKETCH_BOUNDS[m] for m in query.metrics if m in SKETCH_BOUNDS
    }
    assert raw.meta["approximate"] == {}
    assert_same_answer(rolled, raw)


# --- the sketch bounds, checked against the sorted values --------------------------------


def test_percentiles_from_the_rollup_hold_their_stated_bound(clickhouse: Any) -> None:
    times = [(i * 7919) % 30_011 for i in range(1, 400)]
    clickhouse(
        [
            make_row(
                timestamp=BASE + timedelta(minutes=i), response_time_ms=t, client_id=f"c{i % 97}"
            )
            for i, t in enumerate(times)
        ]
    )
    levels = {
        "p50_response_time": 0.5,
        "p90_response_time": 0.9,
        "p95_response_time": 0.95,
        "p99_response_time": 0.99,
    }
    query = AnalyticsQuery(
        scope=ProjectScope.all_projects(),
        start=BASE,
        end=BASE + timedelta(days=1),
        bucket="1d",
        timezone="UTC",
        metrics=(*levels, "unique_users"),
    )
    rolled = run_analytics(query)
    assert rolled.meta["source"] == SERIES.name
    ordered = sorted(times)
    n = len(ordered)
    for name, level in levels.items():
        exact = ordered[math.floor(level * n)]
        # A small state is exact in 10 ms units: the exact time, truncated to them.
        assert rolled.summary[name] == exact - exact % 10, name
    assert rolled.summary["unique_users"] == 97


# --- types, plan choice, the exact flag, the view, backfills -----------------------------


def test_atom_types_match_the_rollup_columns(clickhouse: Any) -> None:
    """Each state expression returns exactly its rollup column's type, so the raw edges
    and the rollup rows UNION ALL without a cast."""
    client = clickhouse_client()
    exprs = ", ".join(f"toTypeName({a.state})" for a in SERIES.atoms)
    (returned,) = client.query(f"SELECT {exprs} FROM gateway_analytics").result_rows  # noqa: S608
    declared = dict(
        client.query(
            "SELECT name, type FROM system.columns WHERE database = currentDatabase() "
            "AND table = {t:String}",
            parameters={"t": SERIES.table},
        ).result_rows
    )
    expected = {a.name: a.type for a in SERIES.atoms}
    assert dict(zip(expected, returned, strict=True)) == expected
    assert {a.name: declared[a.column] for a in SERIES.atoms} == expected


def covered_body(**overrides: Any) -> dict[str, Any]:
    return {
        "start_time": (BASE + timedelta(minutes=5)).isoformat(),
        "end_time": (BASE + timedelta(hours=6, minutes=50)).isoformat(),
        "time_bucket": "1h",
        "timezone": "Asia/Kathmandu",
        "metrics": ["total_requests", "error_rate", "p95_response_time", "total_cost"],
        "group_by": ["model_name"],
        **overrides,
    }


@pytest.mark.parametrize(
    ("overrides", "source", "reason"),
    [
        ({}, "series_15m", None),
        ({"exact": True}, "raw", "exact requested"),
        ({"group_by": ["path"]}, "raw", "group_by path not covered"),
        ({"filters": {"country_code": "DE"}}, "raw", "filter country_code not covered"),
        ({"filters": {"status_class": "2xx"}}, "raw", "filter status_class not covered"),
        ({"time_bucket": "5m"}, "raw", "bucket 5m finer than 15m"),
        (
            {"metrics": ["total_requests"], "group_by": ["tag:team"]},
            "raw",
            "group_by tag:team not covered",
        ),
    ],
)
def test_meta_source_says_which_storage_answered(
    clickhouse: Any, superuser_client: Any, overrides: dict, source: str, reason: str | None
) -> None:
    clickhouse(
        [make_row(timestamp=BASE + timedelta(minutes=9 * i), country_code="DE") for i in range(50)]
    )
    data = analytics(superuser_client, **covered_body(**overrides))
    assert data["meta"]["source"] == source
    assert data["summary"]["total_requests"] == 45  # rows 1..45 lie in [00:05, 06:50)
    if source == "raw":
        assert data["meta"]["approximate"] == {}
    else:
        assert data["meta"]["approximate"] == {
            "p95_response_time": SKETCH_BOUNDS["p95_response_time"]
        }
    if reason:
        query = AnalyticsQuery.from_validated(
            {**validated(superuser_client, overrides)}, ProjectScope.all_projects()
        )
        assert dict(plan(main_select(query)).refused)[SERIES.name] == reason


def validated(client: Any, overrides: dict) -> dict[str, Any]:
    from analytics.serializers import AnalyticsRequestSerializer

    serializer = AnalyticsRequestSerializer(data=covered_body(**overrides))
    assert serializer.is_valid(), serializer.errors
    return dict(serializer.validated_data)


def test_exact_and_rollup_answers_are_cached_apart(clickhouse: Any, superuser_client: Any) -> None:
    clickhouse([make_row(timestamp=BASE + timedelta(minutes=9 * i)) for i in range(50)])
    first = analytics(superuser_client, **covered_body())
    exact = analytics(superuser_client, **covered_body(exact=True))
    again = analytics(superuser_client, **covered_body())
    assert (first["meta"]["source"], exact["meta"]["source"]) == ("series_15m", "raw")
    assert again["meta"]["source"] == "series_15m"


def summary(query: AnalyticsQuery) -> dict[str, Any]:
    return run_analytics(query).summary


def test_backfill_twice_rows_after_it_and_a_late_row_match_raw(clickhouse: Any) -> None:
    client = clickhouse_client()
    rows = [make_row(timestamp=BASE + timedelta(minutes=11 * i), total_tokens=i) for i in range(80)]
    clickhouse(rows)
    # As if the rows were written before the views existed: empty rollups, then backfill.
    for rollup in ROLLUPS.values():
        client.command(f"TRUNCATE TABLE {rollup.table}")
    query = AnalyticsQuery(
        scope=ProjectScope.all_projects(),
        start=BASE + timedelta(minutes=3),
        end=BASE + timedelta(hours=14, minutes=1),
        bucket="1h",
        timezone="Asia/Kolkata",
        metrics=("total_requests", "total_tokens"),
    )
    exact = replace(query, exact=True)
    # A day in UTC buckets: read from the 1d tier, rebuilt from the rebuilt 15m rows.
    daily = replace(
        query,
        bucket="1d",
        timezone="UTC",
        start=BASE - timedelta(hours=22),
        end=BASE + timedelta(days=1, hours=2),
    )
    assert [tier.name for tier, _, _ in plan(main_select(daily)).tiers][-1] == "series_1d"
    # The same days in Kolkata: the day tier, rebuilt over whole local days.
    local_daily = replace(daily, timezone="Asia/Kolkata")
    assert [t.name for t, _, _ in plan(main_select(local_daily)).tiers] == [
        "series_1d_asia_kolkata"
    ]
    assert summary(query) != summary(exact)  # the missing backfill shows
    for _ in range(2):  # idempotent: twice is once
        call_command(
            "rebuild_rollups",
            "--since",
            BASE.isoformat(),
            "--until",
            (BASE + timedelta(days=1)).isoformat(),
            stdout=io.StringIO(),
            stderr=io.StringIO(),
        )
        assert run_analytics(query).time_series == run_analytics(exact).time_series
        assert summary(daily) == summary(replace(daily, exact=True))
        assert (
            run_analytics(local_daily).time_series
            == run_analytics(replace(local_daily, exact=True)).time_series
        )
    insert_rows([make_row(timestamp=BASE + timedelta(hours=2, minutes=7), total_tokens=1000)])
    insert_rows([make_row(timestamp=BASE + timedelta(hours=15), total_tokens=5)])  # after
    assert run_analytics(query).time_series == run_analytics(exact).time_series
    assert summary(query) == summary(exact)
    assert summary(daily) == summary(replace(daily, exact=True))
    assert summary(local_daily) == summary(replace(local_daily, exact=True))
    (rollup_rows,) = client.query(f"SELECT countMerge(s_n) FROM {SERIES.table}").result_rows[0]  # noqa: S608
    assert rollup_rows == 82


def test_generate_traffic_feeds_the_rollup(clickhouse: Any) -> None:
    call_command(
        "generate_traffic",
        "--rows",
        "2000",
        "--days",
        "2",
        "--projects",
        "2",
        "--end",
        "2024-03-10T00:00:00Z",
        stdout=io.StringIO(),
    )
    client = clickhouse_client()
    (raw,) = client.query("SELECT count() FROM gateway_analytics").result_rows[0]
    (rolled,) = client.query(f"SELECT countMerge(s_n) FROM {SERIES.table}").result_rows[0]  # noqa: S608
    assert raw == rolled == 2000


# --- lifecycle: cluster DDL, retention ------------------------------------------------------


def test_cluster_mode_prints_replicated_rollups_a_distributed_front_and_local_views() -> None:
    options = schema.TableOptions(database="budmetrics", retention_days=30, cluster="prod")
    local, distributed, view = schema.create_rollup_statements(options, SERIES, 730)
    assert local.startswith(
        "CREATE TABLE IF NOT EXISTS `budmetrics`.`gateway_analytics_series_15m_local` "
        "ON CLUSTER `prod`"
    )
    assert "ENGINE = ReplicatedAggregatingMergeTree(" in local
    assert "ORDER BY (project_id, timestamp, model_id," in local
    assert "TTL timestamp + INTERVAL 730 DAY DELETE" in local
    assert "ENGINE = Distributed(`prod`, `budmetrics`, `gateway_analytics_series_15m_local`" in (
        distributed
    )
    # Each replica's view reads its local raw table and writes its local rollup.
    assert "TO `budmetrics`.`gateway_analytics_series_15m_local`" in view
    assert "FROM `budmetrics`.`gateway_analytics_local`" in view
    drops = schema.drop_rollup_statements(options, SERIES)
    assert drops[0].startswith("DROP VIEW IF EXISTS `budmetrics`.`gateway_analytics_series_15m_mv`")
    # A tier's view reads the finer rollup's local table on the same replica.
    hourly = ROLLUPS["series_1h"]
    *_, tier_view = schema.create_rollup_statements(options, hourly, 730)
    assert "TO `budmetrics`.`gateway_analytics_series_1h_local`" in tier_view
    assert "FROM `budmetrics`.`gateway_analytics_series_15m_local`" in tier_view
    assert "quantilesTimingMergeState(0.5, 0.9, 0.95, 0.99)(s_rt_q)" in tier_view
    # Day tiers: created on every replica from the local 15-minute rollup; a retired one
    # (Distributed front, local table and view) dropped on the cluster.
    kolkata, new_york = DAY_TIERS[SERIES.name].values()
    berlin = day_tier(SERIES, "Europe/Berlin").table
    existing = [
        SERIES.table,
        f"{SERIES.table}_local",
        new_york.table,
        f"{new_york.table}_local",
        f"{new_york.table}_mv",
        berlin,
        f"{berlin}_local",
        f"{berlin}_mv",
    ]
    synced = schema.day_tier_sync_statements(options, existing, 730)
    assert [s.split("\n")[0] for s in synced] == [
        f"CREATE TABLE IF NOT EXISTS `budmetrics`.`{kolkata.table}_local` ON CLUSTER `prod`",
        f"CREATE TABLE IF NOT EXISTS `budmetrics`.`{kolkata.table}` ON CLUSTER `prod` "
        f"AS `budmetrics`.`{kolkata.table}_local`",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS `budmetrics`.`{kolkata.table}_mv` "
        f"ON CLUSTER `prod` TO `budmetrics`.`{kolkata.table}_local`",
        f"INSERT INTO `budmetrics`.`{kolkata.table}` SELECT "
        "toDateTime(toStartOfDay(timestamp, 'Asia/Kolkata'), 'UTC') AS timestamp, "
        "project_id, model_id, endpoint_id, model_name, model_provider,",
        f"DROP VIEW IF EXISTS `budmetrics`.`{berlin}_mv` ON CLUSTER `prod`",
        f"DROP TABLE IF EXISTS `budmetrics`.`{berlin}` ON CLUSTER `prod`",
        f"DROP TABLE IF EXISTS `budmetrics`.`{berlin}_local` ON CLUSTER `prod`",
    ]
    assert f"FROM `budmetrics`.`{SERIES.table}_local`" in synced[2]


def test_apply_retention_sets_the_rollup_ttl(settings: Any) -> None:
    def ddl() -> str:
        return clickhouse_client().command(f"SHOW CREATE TABLE {SERIES.table}")

    settings.ROLLUP_RETENTION_DAYS = 40
    try:
        call_command("apply_retention", stdout=io.StringIO())
        assert "TTL timestamp + toIntervalDay(40)" in ddl()
    finally:
        settings.ROLLUP_RETENTION_DAYS = 7300
        call_command("apply_retention", stdout=io.StringIO())
    assert "TTL timestamp + toIntervalDay(7300)" in ddl()


def test_a_range_past_raw_retention_is_answered_from_the_rollup_with_a_warning(
    clickhouse: Any, superuser_client: Any, settings: Any
) -> None:
    clickhouse([make_row(timestamp=BASE + timedelta(minutes=9 * i)) for i in range(50)])
    settings.CLICKHOUSE_RETENTION_DAYS = 30  # BASE (2024) is long past it
    data = analytics(superuser_client, **covered_body(exact=True))
    assert data["meta"]["source"] == "series_15m"
    (warning,) = data["meta"]["warnings"]
    assert "CLICKHOUSE_RETENTION_DAYS" in warning
    assert "exact: true could not be honoured" in warning
    assert "exact values of p95_response_time are unavailable" in warning
    uncovered = analytics(superuser_client, **covered_body(group_by=["path"]))
    assert uncovered["meta"]["source"] == "raw"
    (warning,) = uncovered["meta"]["warnings"]
    assert "group_by path not covered" in warning
    assert "total_requests, error_rate, p95_response_time, total_cost are unavailable" in warning


def test_a_range_older_than_the_rollup_retention_reads_raw_rows(
    clickhouse: Any, superuser_client: Any, settings: Any
) -> None:
    clickhouse([make_row(timestamp=BASE + timedelta(minutes=9 * i)) for i in range(50)])
    settings.ROLLUP_RETENTION_DAYS = 30  # the rollup's rows for BASE (2024) are expired
    data = analytics(superuser_client, **covered_body())
    assert data["meta"]["source"] == "raw"
    assert data["summary"]["total_requests"] == 45


def test_the_schema_endpoint_lists_what_each_rollup_covers(superuser_client: Any) -> None:
    response = superuser_client.get("/gateway/analytics/schema")
    assert response.status_code == 200
    listed = {r["name"]: r for r in response.json()["data"]["rollups"]}
    assert list(listed) == list(FAMILIES)
    rollup = listed["series_15m"]
    # the client rollup's measures are not request metrics: none is listed
    assert listed["clients_1h"]["metrics"] == []
    assert listed["clients_1h"]["dimensions"] == ["project_id", "client_id"]
    assert rollup["bucket"] == "15m"
    assert rollup["tiers"] == ["series_1h", "series_6h", "series_1d"]
    assert rollup["day_tiers"] == {  # ROLLUP_DAY_ZONES of the test settings
        "Asia/Kolkata": "series_1d_asia_kolkata",
        "America/New_York": "series_1d_america_new_york",
    }
    assert listed["geo_15m"]["day_tiers"] == {}
    assert rollup["dimensions"] == [
        "project_id",
        "model_id",
        "endpoint_id",
        "model_name",
        "model_provider",
    ]
    assert set(rollup["metrics"]) == set(METRICS)  # every registry metric merges
    assert rollup["approximate"] == {m: SKETCH_BOUNDS[m] for m in METRICS if m in SKETCH_BOUNDS}
    geo, routes = listed["geo_15m"], listed["routes_15m"]
    assert geo["dimensions"] == ["project_id", "country_code", "region", "city"]
    assert set(geo["approximate"]) == {
        "p95_response_time",
        "unique_users",
        "response_time_percentiles",
        "unique_users_sketch",
    }
    assert routes["dimensions"] == ["project_id", "path", "method"]
    assert set(routes["approximate"]) == {"response_time_percentiles", "ttft_percentiles"}


def test_log_queries_shows_the_plan_and_why_a_rollup_was_refused(
    clickhouse: Any, superuser_client: Any, settings: Any, caplog: Any
) -> None:
    settings.LOG_QUERIES = True
    clickhouse([make_row(timestamp=BASE + timedelta(minutes=9 * i)) for i in range(5)])
    with caplog.at_level(logging.INFO):
        analytics(superuser_client, **covered_body(group_by=["path"]))
        analytics(superuser_client, **covered_body())
        analytics(superuser_client, **covered_body(timezone="UTC", time_bucket="6h"))
    plans = [
        r.msg
        for r in caplog.records
        if isinstance(r.msg, dict) and r.msg.get("event") == "query_plan"
    ]
    refused = [p for p in plans if p["source"] == "raw"]
    chosen = [p for p in plans if p["source"] == "series_15m"]
    assert refused[0]["refused"] == {
        "series_15m": "group_by path not covered",
        "blocked_15m": "metric total_requests not covered",
        "clients_1h": "metric total_requests not covered",
        "geo_15m": "metric total_cost not covered",
        "routes_15m": "metric error_rate not covered",
        "rules_15m": "metric total_requests not covered",
    }
    assert chosen[0]["rollup_range"] == [
        (BASE + timedelta(minutes=15)).isoformat(),
        (BASE + timedelta(hours=6, minutes=45)).isoformat(),
    ]
    assert chosen[0]["tiers"] == []  # Kathmandu hours start at :45
    assert chosen[-1]["tiers"] == ["series_1h"]  # no whole 6 hours in 00:05-06:50


# --- nested queries and their raw fallback ------------------------------------------------


def _per_model_then_top(exact: bool, fallback: Select | None = None) -> Select:
    """A covered inner GROUP BY (per model) under an outer stage (rank, keep two)."""
    rows = Rows(
        scope=ProjectScope.all_projects(),
        start=BASE + timedelta(minutes=7),
        end=BASE + timedelta(hours=20, minutes=3),
    )
    inner = Select(
        columns=(("model_name", ""), (METRICS["total_requests"].sql, "n")),
        source=rows,
        group_by=("model_name",),
        metric_columns=MappingProxyType({"n": "total_requests"}),
        coverage=Coverage(dimensions=("model_name",), exact=exact),
    )
    return Select(
        columns=(("model_name", ""), ("n", "")),
        source=inner,
        order_by=("n DESC", "model_name"),
        limit=2,
        fallback=fallback,
    )


def test_a_nested_query_is_planned_at_its_innermost_select_and_falls_back_when_refused(
    clickhouse: Any,
) -> None:
    clickhouse(
        [
            make_row(timestamp=BASE + timedelta(minutes=5 * i), model_name=MODELS[i % 3])
            for i in range(300)
            if i % 3 != 2 or i % 2
        ]
    )
    covered = plan(_per_model_then_top(exact=False))
    assert covered.source == SERIES.name, covered.refused
    raw_tree = _per_model_then_top(exact=True)
    fallback = Select(
        columns=(("model_name", ""), ("count()", "n")),
        source=raw_tree.rows,
        group_by=("model_name",),
        order_by=("n DESC", "model_name"),
        limit=2,
    )
    refused = plan(_per_model_then_top(exact=True, fallback=fallback))
    assert refused.source == "raw"
    assert refused.query is fallback
    assert dict(refused.refused) == dict.fromkeys(FAMILIES, "exact requested")
    rolled = execute(_per_model_then_top(exact=False)).rows
    assert rolled == execute(_per_model_then_top(exact=True, fallback=fallback)).rows
    assert rolled == execute(raw_tree).rows
    assert len(rolled) == 2
    assert rolled[0][1] > rolled[1][1]


# --- coarser tiers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "bucket", "tiers"),
    [
        ("UTC", "1d", ["series_1h", "series_6h", "series_1d"]),
        # ROLLUP_DAY_ZONES (test settings: Kolkata and New York): their local days.
        ("Asia/Kolkata", "1d", ["series_1d_asia_kolkata"]),  # days start at :30 UTC
        ("Asia/Kolkata", "1w", ["series_1d_asia_kolkata"]),
        ("Asia/Kolkata", "12h", ["series_1h", "series_6h"]),  # not whole days: UTC tiers
        ("America/New_York", "1d", ["series_1d_america_new_york"]),  # a 23-hour day
        # A zone without a day tier: UTC hours and quarter days inside its days.
        ("Asia/Kathmandu", "1d", ["series_1h", "series_6h"]),
        ("Asia/Kathmandu", "6h", ["series_1h"]),  # +5:45: no UTC quarter day fits
        ("Asia/Kathmandu", "1h", []),
        ("UTC", "30m", []),
    ],
)
def test_long_ranges_read_coarser_tiers_and_equal_raw(
    clickhouse: Any, zone: str, bucket: str, tiers: list[str]
) -> None:
    """Rows over four days (DST in New York on the third), fed through the chained views;
    a 3-day unaligned request reads each 15 minutes from the coarsest tier that fits
    inside one of its buckets, and answers exactly as raw rows do."""
    clickhouse(
        [
            make_row(
                timestamp=BASE + timedelta(minutes=7 * i, seconds=i % 60),
                model_name=MODELS[i % 3],
                status_code=500 if i % 11 == 0 else 200,
                response_time_ms=20 + (i * 37) % 900,
                total_tokens=i,
                cost=i / 1000,
            )
            for i in range(SPAN_MINUTES // 7)
        ]
    )
    (tier_rows,) = (
        clickhouse_client()
        .query("SELECT countMerge(s_n) FROM gateway_analytics_series_1d")
        .result_rows[0]
    )
    assert tier_rows == SPAN_MINUTES // 7  # the 1d tier saw every row, via 15m and 1h, 6h
    for local_days in DAY_TIERS[SERIES.name].values():  # and each day tier, via 15m
        days = (
            clickhouse_client()
            .query(f"SELECT timestamp, countMerge(s_n) FROM {local_days.table} GROUP BY 1")  # noqa: S608
            .result_rows
        )
        assert sum(n for _, n in days) == SPAN_MINUTES // 7
        local = ZoneInfo(local_days.zone)  # each row starts at a local midnight
        assert {d.astimezone(local).time() for d, _ in days} == {time(0)}
    query = AnalyticsQuery(
        scope=ProjectScope.all_projects(),
        start=BASE + timedelta(hours=3, minutes=7),
        end=BASE + timedelta(days=3, hours=14, minutes=52),
        bucket=bucket,
        timezone=zone,
        metrics=(
            "total_requests",
            "error_rate",
            "avg_response_time",
            "total_tokens",
            "total_cost",
            "p95_response_time",
            "max_response_time",
        ),
        group_by=("model_name",),
        top_n=2,
        include_other=True,
    )
    chosen = plan(main_select(query))
    assert chosen.source == SERIES.name
    assert [tier.name for tier, _, _ in chosen.tiers] == tiers
    rolled = run_analytics(query)
    assert rolled.meta["source"] == SERIES.name
    assert_same_answer(rolled, run_analytics(replace(query, exact=True)))


def test_a_range_without_a_whole_local_day_reads_the_utc_tiers() -> None:
    query = AnalyticsQuery(
        scope=ProjectScope.all_projects(),
        start=datetime(2024, 3, 8, 19, 0, tzinfo=UTC),  # Kolkata 00:30, after midnight
        end=datetime(2024, 3, 9, 18, 0, tzinfo=UTC),  # 23:30, before the next one
        bucket="1d",
        timezone="Asia/Kolkata",
        metrics=("total_requests",),
    )
    assert [t.name for t, _, _ in plan(main_select(query)).tiers] == ["series_1h", "series_6h"]
    whole = replace(  # one whole local day, 9 March
        query,
        start=datetime(2024, 3, 8, 18, 30, tzinfo=UTC),
        end=datetime(2024, 3, 9, 18, 30, tzinfo=UTC),
    )
    chosen = plan(main_select(whole))
    assert [(t.name, a, b) for t, a, b in chosen.tiers] == [
        ("series_1d_asia_kolkata", whole.start, whole.end)
    ]


def test_migrate_makes_the_day_tiers_match_rollup_day_zones(clickhouse: Any) -> None:
    """A day tier of a zone no longer configured is dropped (view and table), a configured
    one missing is created and backfilled from the 15-minute rollup."""
    client = clickhouse_client()
    clickhouse([make_row(timestamp=BASE + timedelta(hours=h)) for h in range(30)])
    options = schema.current_options()
    berlin = day_tier(SERIES, "Europe/Berlin")
    for statement in schema.create_rollup_statements(options, berlin, 30):
        client.command(statement)
    kolkata = DAY_TIERS[SERIES.name]["Asia/Kolkata"]
    for statement in schema.drop_rollup_statements(options, kolkata):
        client.command(statement)

    def tables() -> set[str]:
        rows = client.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase()"
        ).result_rows
        return {name for (name,) in rows}

    assert {berlin.table, f"{berlin.table}_mv"} <= tables()
    assert kolkata.table not in tables()
    call_command("migrate", database="clickhouse", stdout=io.StringIO())
    assert not {berlin.table, f"{berlin.table}_mv"} & tables()
    assert {kolkata.table, f"{kolkata.table}_mv"} <= tables()
    (backfilled,) = client.query(f"SELECT countMerge(s_n) FROM {kolkata.table}").result_rows[0]  # noqa: S608
    assert backfilled == 30
    call_command("migrate", database="clickhouse", stdout=io.StringIO())  # in step: no-op
    assert schema.day_tier_sync_statements(options, sorted(tables()), 30) == []
