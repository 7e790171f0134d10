"""POST /gateway/analytics against real rows in chDB, checked against tests.analytics_oracle
(an independent Python computation over the same rows)."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analytics.query.registry import DIMENSIONS, METRICS
from tests import analytics_oracle as oracle
from tests.conftest import insert_rows, truncate_clickhouse

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

START = datetime(2024, 3, 30, 0, 0, tzinfo=UTC)
HOURS = 72  # spans Europe/Berlin's spring-forward day, 2024-03-31
ROWS = oracle.dataset(START, HOURS, 3000)
END = START + timedelta(hours=HOURS)
ALL_METRICS = list(METRICS)


@pytest.fixture(scope="module", autouse=True)
def fixture_rows(django_db_setup: Any, django_db_blocker: Any) -> Any:
    with django_db_blocker.unblock():
        truncate_clickhouse()
        insert_rows(ROWS)
        yield
        truncate_clickhouse()


def post(client: Any, **body: Any) -> Any:
    # These tests hold the raw path to the oracle (exact percentiles and distinct counts);
    # tests/test_rollups.py holds the rollup path to the raw path.
    body.setdefault("exact", True)
    body.setdefault("start_time", START.isoformat())
    body.setdefault("end_time", END.isoformat())
    return client.post("/gateway/analytics", body, format="json")


def ok(client: Any, **body: Any) -> dict[str, Any]:
    response = post(client, **body)
    assert response.status_code == 200, response.json()
    payload = response.json()
    assert payload["success"] is True
    return payload["data"]


def assert_metrics_equal(
    actual: dict[str, Any], rows: list[dict], names: list[str], seconds: float = 1.0
) -> None:
    for name in names:
        expected = oracle.metric(rows, name, seconds)
        if expected is None:
            assert actual[name] is None, name
        elif isinstance(expected, float):
            assert actual[name] == pytest.approx(expected, rel=1e-9, abs=1e-12), name
        else:
            assert actual[name] == expected, name


def in_range(rows: list[dict], start: datetime, end: datetime) -> list[dict]:
    return [r for r in rows if start <= r["timestamp"] < end]


# --- summary and metrics ---------------------------------------------------------------


def test_summary_holds_every_metric_computed_over_all_rows(superuser_client):
    data = ok(superuser_client, metrics=ALL_METRICS, time_bucket="1d")
    assert_metrics_equal(data["summary"], ROWS, ALL_METRICS, seconds=HOURS * 3600)
    assert data["summary"]["total_errors"] == oracle.metric(ROWS, "error_count")


def test_summary_percentile_is_of_all_rows_not_an_average_of_buckets(superuser_client):
    data = ok(
        superuser_client, metrics=["p95_response_time", "avg_response_time"], time_bucket="1h"
    )
    bucket_avgs = [
        p["metrics"]["avg_response_time"]
        for p in data["time_series"]
        if p["metrics"]["avg_response_time"] is not None
    ]
    assert data["summary"]["p95_response_time"] == oracle.metric(ROWS, "p95_response_time")
    assert data["summary"]["avg_response_time"] == pytest.approx(
        oracle.metric(ROWS, "avg_response_time")
    )
    assert data["summary"]["avg_response_time"] != pytest.approx(
        sum(bucket_avgs) / len(bucket_avgs)
    )


def test_default_metrics_are_total_requests_error_rate_and_avg_response_time(superuser_client):
    data = ok(superuser_client, time_bucket="1d")
    assert set(data["time_series"][0]["metrics"]) == {
        "total_requests",
        "error_rate",
        "avg_response_time",
    }
    assert data["meta"]["units"] == {
        "total_requests": "requests",
        "error_rate": "fraction",
        "avg_response_time": "ms",
    }


@pytest.mark.parametrize("bucket", ["15m", "1h", "6h", "12h", "1d", "1w"])
def test_every_bucket_holds_exactly_its_rows(superuser_client, bucket):
    start, end = START + timedelta(hours=5), START + timedelta(hours=29)
    data = ok(
        superuser_client,
        metrics=ALL_METRICS,
        time_bucket=bucket,
        start_time=start.isoformat(),
        end_time=end.isoformat(),
    )
    rows = in_range(ROWS, start, end)
    expected: dict[str, list] = defaultdict(list)
    for row in rows:
        expected[oracle.iso(oracle.local_bucket(row["timestamp"], bucket))].append(row)
    points = {p["timestamp"]: p["metrics"] for p in data["time_series"]}
    assert set(expected) <= set(points)
    assert sum(p["total_requests"] for p in points.values()) == len(rows)
    for timestamp, bucket_rows in expected.items():
        assert_metrics_equal(
            points[timestamp], bucket_rows, [m for m in ALL_METRICS if m != "requests_per_second"]
        )


def test_one_minute_buckets_over_two_hours(superuser_client):
    start, end = START + timedelta(hours=10), START + timedelta(hours=12)
    data = ok(
        superuser_client,
        metrics=["total_requests", "requests_per_second"],
        time_bucket="1m",
        start_time=start.isoformat(),
        end_time=end.isoformat(),
    )
    assert len(data["time_series"]) == 120
    counts = defaultdict(int)
    for row in in_range(ROWS, start, end):
        counts[oracle.iso(oracle.local_bucket(row["timestamp"], "1m"))] += 1
    for point in data["time_series"]:
        assert point["metrics"]["total_requests"] == counts.get(point["timestamp"], 0)
        assert point["metrics"]["requests_per_second"] == pytest.approx(
            counts.get(point["timestamp"], 0) / 60
        )


def test_requests_per_second_in_summary_uses_the_whole_range(superuser_client):
    data = ok(superuser_client, metrics=["requests_per_second"], time_bucket="1d")
    assert data["summary"]["requests_per_second"] == pytest.approx(len(ROWS) / (HOURS * 3600))


# --- group_by --------------------------------------------------------------------------


@pytest.mark.parametrize("dimension", list(DIMENSIONS))
def test_group_by_each_dimension_matches_rows(superuser_client, dimension):
    # Saturday and Sunday lie in one 1w bucket, so each group's point is its total.
    end = START + timedelta(hours=48)
    data = ok(
        superuser_client,
        metrics=["total_requests", "error_rate", "p90_response_time", "total_tokens"],
        time_bucket="1w",
        group_by=[dimension],
        fill_gaps=False,
        end_time=end.isoformat(),
    )
    expected: dict[Any, list] = defaultdict(list)
    for row in in_range(ROWS, START, end):
        expected[oracle.dimension_value(row, dimension)].append(row)
    got: dict[Any, dict] = defaultdict(lambda: {"total_requests": 0})
    for point in data["time_series"]:
        key = point["groups"][dimension]
        assert key not in ("", "00000000-0000-0000-0000-000000000000")
        got[key] = point["metrics"]
    assert set(got) == set(expected)
    for key, rows in expected.items():
        assert_metrics_equal(
            got[key], rows, ["total_requests", "error_rate", "p90_response_time", "total_tokens"]
        )


def test_sum_of_grouped_requests_equals_ungrouped_per_bucket(superuser_client):
    grouped = ok(superuser_client, time_bucket="6h", group_by=["country_code", "method"])
    plain = ok(superuser_client, time_bucket="6h")
    totals: dict[str, int] = defaultdict(int)
    for point in grouped["time_series"]:
        totals[point["timestamp"]] += point["metrics"]["total_requests"]
    assert totals == {p["timestamp"]: p["metrics"]["total_requests"] for p in plain["time_series"]}


def test_empty_groups_render_as_null(superuser_client):
    data = ok(
        superuser_client, time_bucket="1d", group_by=["model_name", "endpoint_id"], fill_gaps=False
    )
    values = [p["groups"] for p in data["time_series"]]
    assert any(g["model_name"] is None for g in values)
    assert any(g["endpoint_id"] is None for g in values)


# --- filters ---------------------------------------------------------------------------

FILTER_CASES = [
    ({"status_code": 200}, lambda r: r["status_code"] == 200),
    ({"country_code": "US"}, lambda r: r["country_code"] == "US"),
    ({"country_code": ["US", "DE"]}, lambda r: r["country_code"] in ("US", "DE")),
    ({"model_name": {"op": "ne", "value": "gpt-4o"}}, lambda r: r["model_name"] != "gpt-4o"),
    ({"method": {"op": "in", "value": ["GET"]}}, lambda r: r["method"] == "GET"),
    (
        {"country_code": {"op": "not_in", "value": ["US", ""]}},
        lambda r: r["country_code"] not in ("US", ""),
    ),
    ({"status_code": {"op": "gt", "value": 400}}, lambda r: r["status_code"] > 400),
    ({"status_code": {"op": "gte", "value": 400}}, lambda r: r["status_code"] >= 400),
    ({"status_code": {"op": "lt", "value": 300}}, lambda r: r["status_code"] < 300),
    ({"status_code": {"op": "lte", "value": 301}}, lambda r: r["status_code"] <= 301),
    ({"path": {"op": "contains", "value": "models"}}, lambda r: "models" in r["path"]),
    (
        {"path": {"op": "contains", "value": 'abc\'s "quoted"'}},
        lambda r: 'abc\'s "quoted"' in r["path"],
    ),
    ({"path": {"op": "starts_with", "value": "/v1/ü"}}, lambda r: r["path"].startswith("/v1/ü")),
    (
        {"path": {"op": "regex", "value": "^/v1/(chat|embed)"}},
        lambda r: re.search("^/v1/(chat|embed)", r["path"]) is not None,
    ),
    ({"country_code": {"op": "is_empty", "value": True}}, lambda r: r["country_code"] == ""),
    (
        {"endpoint_id": {"op": "is_empty", "value": False}},
        lambda r: r["endpoint_id"] != oracle.ZERO_UUID,
    ),
    ({"model_id": str(oracle.MODELS[1])}, lambda r: r["model_id"] == oracle.MODELS[1]),
    ({"is_blocked": True}, lambda r: r["is_blocked"]),
    ({"is_bot": {"op": "ne", "value": True}}, lambda r: not r["is_bot"]),
    ({"status_class": "4xx"}, lambda r: 400 <= r["status_code"] < 500),
    (
        {"status_class": {"op": "not_in", "value": ["2xx", "3xx"]}},
        lambda r: r["status_code"] >= 400,
    ),
    (
        {"or": [{"country_code": "DE"}, {"status_code": 500}]},
        lambda r: r["country_code"] == "DE" or r["status_code"] == 500,
    ),
    ({"not": {"method": "GET"}}, lambda r: r["method"] != "GET"),
    (
        {
            "and": [
                {"device_type": "desktop"},
                {"or": [{"block_reason": "rate_limit"}, {"error_type": "upstream"}]},
            ]
        },
        lambda r: (
            r["device_type"] == "desktop"
            and (r["block_reason"] == "rate_limit" or r["error_type"] == "upstream")
        ),
    ),
    (
        {"browser": "Chrome", "os": "Windows", "region": "Berlin", "city": "Berlin"},
        lambda r: r["browser"] == "Chrome" and r["os"] == "Windows" and r["city"] == "Berlin",
    ),
    (
        {"client_id": {"op": "is_empty", "value": True}, "model_provider": "meta"},
        lambda r: r["client_id"] == "" and r["model_provider"] == "meta",
    ),
]


@pytest.mark.parametrize(
    ("filters", "predicate"), FILTER_CASES, ids=[str(i) for i in range(len(FILTER_CASES))]
)
def test_filter_operators_select_exactly_the_matching_rows(superuser_client, filters, predicate):
    data = ok(
        superuser_client,
        metrics=["total_requests", "avg_response_time", "unique_users"],
        time_bucket="1d",
        filters=filters,
    )
    rows = [r for r in ROWS if predicate(r)]
    assert rows, "the case must select some rows to mean anything"
    assert_metrics_equal(
        data["summary"], rows, ["total_requests", "avg_response_time", "unique_users"]
    )


def test_id_lists_narrow_to_models_and_endpoints(superuser_client):
    data = ok(
        superuser_client,
        time_bucket="1d",
        model_ids=[str(oracle.MODELS[0])],
        endpoint_ids=[str(oracle.ENDPOINTS[0]), str(oracle.ENDPOINTS[1])],
    )
    expected = [
        r
        for r in ROWS
        if r["model_id"] == oracle.MODELS[0] and r["endpoint_id"] in oracle.ENDPOINTS[:2]
    ]
    assert data["summary"]["total_requests"] == len(expected)


def test_project_ids_and_filters_project_id_both_scope_the_query(superuser_client):
    project = str(oracle.PROJECTS[1])
    expected = sum(1 for r in ROWS if str(r["project_id"]) == project)
    top_level = ok(superuser_client, time_bucket="1d", project_ids=[project])
    in_filters = ok(superuser_client, time_bucket="1d", filters={"project_id": [project]})
    assert top_level["summary"]["total_requests"] == expected
    assert in_filters["summary"]["total_requests"] == expected
    assert in_filters["query"]["project_scope"] == [project]


def test_null_filters_are_accepted(superuser_client):
    assert ok(superuser_client, time_bucket="1d", filters=None)["summary"]["total_requests"] == len(
        ROWS
    )


# --- time zones and gaps ---------------------------------------------------------------


def test_hour_buckets_on_a_dst_day_follow_the_local_clock(superuser_client):
    # 2024-03-31 in Berlin has 23 hours: 00:00+01:00 … 01:00+01:00, 03:00+02:00 … 23:00+02:00.
    start = datetime(2024, 3, 30, 23, 0, tzinfo=UTC)
    end = datetime(2024, 3, 31, 22, 0, tzinfo=UTC)
    data = ok(
        superuser_client,
        time_bucket="1h",
        timezone="Europe/Berlin",
        start_time=start.isoformat(),
        end_time=end.isoformat(),
    )
    stamps = [p["timestamp"] for p in data["time_series"]]
    assert len(stamps) == 23
    assert stamps[0] == "2024-03-31T00:00:00+01:00"
    assert "2024-03-31T03:00:00+02:00" in stamps
    assert not any(s.startswith("2024-03-31T02:") for s in stamps)
    counts = defaultdict(int)
    for row in in_range(ROWS, start, end):
        counts[
            oracle.iso(
                oracle.local_bucket(row["timestamp"], "1h", "Europe/Berlin"), "Europe/Berlin"
            )
        ] += 1
    assert {p["timestamp"]: p["metrics"]["total_requests"] for p in data["time_series"]} == {
        s: counts.get(s, 0) for s in stamps
    }


def test_day_buckets_align_to_local_midnight_and_dst_day_is_23_hours(superuser_client):
    data = ok(
        superuser_client,
        time_bucket="1d",
        timezone="Europe/Berlin",
        metrics=["total_requests", "requests_per_second"],
    )
    expected = defaultdict(int)
    for row in ROWS:
        expected[
            oracle.iso(
                oracle.local_bucket(row["timestamp"], "1d", "Europe/Berlin"), "Europe/Berlin"
            )
        ] += 1
    got = {p["timestamp"]: p["metrics"] for p in data["time_series"]}
    assert {k: v["total_requests"] for k, v in got.items()} == dict(expected)
    dst_day = got["2024-03-31T00:00:00+01:00"]
    assert dst_day["requests_per_second"] == pytest.approx(dst_day["total_requests"] / (23 * 3600))


def test_timezone_with_a_45_minute_offset(superuser_client):
    data = ok(
        superuser_client,
        time_bucket="1h",
        timezone="Asia/Kathmandu",
        start_time="2024-03-30T00:15:00Z",
        end_time="2024-03-30T06:15:00Z",
    )
    assert [p["timestamp"] for p in data["time_series"]][:2] == [
        "2024-03-30T06:00:00+05:45",
        "2024-03-30T07:00:00+05:45",
    ]


def test_gaps_are_filled_with_zero_counts_and_null_averages(superuser_client):
    start = datetime(2024, 4, 5, tzinfo=UTC)  # no rows this day
    data = ok(
        superuser_client,
        time_bucket="1h",
        metrics=["total_requests", "avg_response_time", "error_rate", "total_cost"],
        start_time=start.isoformat(),
        end_time=(start + timedelta(hours=6)).isoformat(),
    )
    assert len(data["time_series"]) == 6
    for point in data["time_series"]:
        assert point["metrics"] == {
            "total_requests": 0,
            "avg_response_time": None,
            "error_rate": None,
            "total_cost": 0,
        }
    assert data["summary"]["total_requests"] == 0
    assert data["summary"]["avg_response_time"] is None


def test_fill_gaps_false_returns_only_buckets_with_rows(superuser_client):
    data = ok(
        superuser_client,
        time_bucket="1h",
        fill_gaps=False,
        start_time="2024-04-01T20:00:00Z",
        end_time="2024-04-02T04:00:00Z",
    )
    assert all(p["metrics"]["total_requests"] > 0 for p in data["time_series"])
    assert len(data["time_series"]) == 4  # rows end at 2024-04-02T00:00Z


# --- top_n and compare_previous ---------------------------------------------------------


def test_top_n_keeps_the_largest_groups_and_other_holds_the_rest(superuser_client):
    end = START + timedelta(hours=48)  # one 1w bucket
    data = ok(
        superuser_client,
        time_bucket="1w",
        group_by=["country_code"],
        top_n=2,
        include_other=True,
        order_by="total_requests",
        end_time=end.isoformat(),
        metrics=["total_requests", "p95_response_time"],
        fill_gaps=False,
    )
    by_country: dict[Any, list] = defaultdict(list)
    for row in in_range(ROWS, START, end):
        by_country[oracle.dimension_value(row, "country_code")].append(row)
    ranked = sorted(by_country, key=lambda k: (-len(by_country[k]), str(k)))
    top = ranked[:2]
    other_rows = [r for k in ranked[2:] for r in by_country[k]]
    got = {p["groups"]["country_code"]: p["metrics"] for p in data["time_series"]}
    assert list(got) == [*top, "other"]
    for key in top:
        assert_metrics_equal(got[key], by_country[key], ["total_requests", "p95_response_time"])
    assert_metrics_equal(got["other"], other_rows, ["total_requests", "p95_response_time"])
    assert data["meta"]["truncated"] is True


def test_top_n_without_other_drops_the_rest_from_series_but_not_summary(superuser_client):
    data = ok(
        superuser_client,
        time_bucket="1d",
        group_by=["model_name"],
        top_n=1,
        order_by="total_tokens",
        metrics=["total_tokens"],
    )
    totals: dict[Any, int] = defaultdict(int)
    for row in ROWS:
        totals[oracle.dimension_value(row, "model_name")] += row["total_tokens"]
    best = max(totals, key=lambda k: totals[k])
    assert {p["groups"]["model_name"] for p in data["time_series"]} == {best}
    assert sum(p["metrics"]["total_tokens"] for p in data["time_series"]) == totals[best]
    assert data["summary"]["total_tokens"] == sum(totals.values())


def test_compare_previous_reports_the_previous_period_and_change(superuser_client):
    start, end = START + timedelta(hours=36), START + timedelta(hours=72)
    data = ok(
        superuser_client,
        time_bucket="1d",
        compare_previous=True,
        metrics=["total_requests", "error_rate"],
        start_time=start.isoformat(),
        end_time=end.isoformat(),
    )
    current = in_range(ROWS, start, end)
    previous = in_range(ROWS, START, start)
    prev = data["summary"]["previous_period"]
    assert prev["start_time"] == oracle.iso(START)
    assert_metrics_equal(prev["metrics"], previous, ["total_requests", "error_rate"])
    change = prev["change"]["total_requests"]
    assert change["absolute"] == len(current) - len(previous)
    assert change["percent"] == pytest.approx((len(current) - len(previous)) / len(previous) * 100)


def test_query_echo_and_meta(superuser_client):
    data = ok(superuser_client, time_bucket="auto", timezone="America/New_York")
    assert data["query"]["time_bucket"] == "15m"  # 72 h / 15 min = 288 points ≤ 300; 5m: 864
    assert data["query"]["timezone"] == "America/New_York"
    assert data["query"]["project_scope"] == "all"
    assert any("auto" in w for w in data["meta"]["warnings"])
    # rows_read is the engine's read_rows; embedded chDB 4.4 reports result rows there
    # (a chDB limitation noted in the README), a server reports rows scanned.
    assert isinstance(data["meta"]["rows_read"], int)
    assert data["meta"]["rows_read"] >= 1
    assert data["meta"]["elapsed_ms"] > 0


# --- access control --------------------------------------------------------------------


def test_restricted_client_sees_only_its_projects(api_client_factory):
    project = str(oracle.PROJECTS[0])
    client = api_client_factory([project])
    data = ok(client, time_bucket="1d")
    assert data["summary"]["total_requests"] == sum(
        1 for r in ROWS if str(r["project_id"]) == project
    )
    assert data["query"]["project_scope"] == [project]


def test_restricted_client_cannot_widen_scope_with_filters(api_client_factory):
    mine, theirs = str(oracle.PROJECTS[0]), str(oracle.PROJECTS[2])
    client = api_client_factory([mine])
    forbidden = post(client, time_bucket="1d", project_ids=[theirs])
    assert forbidden.status_code == 403
    assert theirs in forbidden.json()["error"]["message"]
    nested = ok(
        client, time_bucket="1d", filters={"or": [{"project_id": theirs}, {"project_id": mine}]}
    )
    assert nested["summary"]["total_requests"] == sum(
        1 for r in ROWS if str(r["project_id"]) == mine
    )


def test_unauthenticated_request_is_401_json(anonymous_client):
    response = post(anonymous_client)
    assert response.status_code == 401
    assert response.json()["success"] is False
