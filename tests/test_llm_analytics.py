"""Issue 14's LLM metrics and dimensions (TTFT, tokens/s, fallbacks, cache hits, finish
reasons, tags) on real chDB rows, each number checked against tests.analytics_oracle (an
independent Python computation over the same rows), including rows that record none of
the LLM fields, a tag key no row has, hostile tag keys (400) and hostile tag values (bound,
answered exactly). Also the ``llm`` dashboard view and the top-routes / client-analytics
LLM columns."""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analytics import cache as response_cache
from analytics import dashboards
from analytics.query.registry import FINISH_REASONS, METRICS, ROUTING_DECISIONS
from tests import analytics_oracle as oracle
from tests.conftest import insert_rows, make_row, truncate_clickhouse

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

START = datetime(2024, 6, 1, tzinfo=UTC)  # a Saturday: [START, START + 48 h) is one 1w bucket
HOURS = 48
END = START + timedelta(hours=HOURS)

LLM_METRICS = [
    "avg_ttft",
    "p50_ttft",
    "p95_ttft",
    "p99_ttft",
    "output_tokens_per_second",
    "fallback_rate",
    "rescued_requests",
    "cache_hit_rate",
    "cached_input_tokens",
    "truncation_rate",
    "content_filter_rate",
    "cost_per_1k_tokens",
]
ADDITIVE = {"rescued_requests", "cached_input_tokens"}

# A project whose rows were all written before the LLM columns existed (their defaults).
LEGACY = uuid.UUID("00000000-0000-4000-8000-0000000000e1")
# A project with hand-made rows where the ratio of sums and the mean of ratios differ a lot.
RATIO = uuid.UUID("00000000-0000-4000-8000-0000000000e2")


def _legacy_rows() -> list[dict[str, Any]]:
    return [
        make_row(
            project_id=LEGACY,
            timestamp=START + timedelta(hours=i),
            client_id="legacy-key",
            status_code=200 if i % 3 else 502,
            response_time_ms=100 + i,
            output_tokens=10 * i,
        )
        for i in range(20)
    ]


def _streamed(group: str, output: int, response_ms: int, ttft_ms: int, **values: Any) -> dict:
    values.setdefault("is_streaming", True)
    return make_row(
        project_id=RATIO,
        timestamp=START + timedelta(hours=3),
        model_name=group,
        output_tokens=output,
        response_time_ms=response_ms,
        ttft_ms=ttft_ms,
        **values,
    )


def _ratio_rows() -> list[dict[str, Any]]:
    return [
        # model a: 1000 tokens in 1 s and 10 tokens in 10 s: 1010 / 11 = 91.8 tokens/s,
        # while the mean of the two rates is 500.5.
        _streamed("a", 1000, 1100, 100),
        _streamed("a", 10, 10100, 100),
        # model b: 500 tokens in 5 s = 100 tokens/s.
        _streamed("b", 500, 5050, 50),
        # Left out of tokens/s: not streamed, no first token, first token at/after the end.
        _streamed("a", 99_999, 2000, 1000, is_streaming=False),
        _streamed("a", 99_999, 2000, 0),
        _streamed("b", 99_999, 300, 300),
        _streamed("b", 99_999, 300, 900),
    ]


ROWS = oracle.dataset(START, HOURS, 2500, seed=14)
LEGACY_ROWS = _legacy_rows()
RATIO_ROWS = _ratio_rows()
ALL_ROWS = [*ROWS, *LEGACY_ROWS, *RATIO_ROWS]


@pytest.fixture(scope="module", autouse=True)
def fixture_rows(django_db_setup: Any, django_db_blocker: Any) -> Any:
    with django_db_blocker.unblock():
        truncate_clickhouse()
        insert_rows(ALL_ROWS)
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
    return response.json()["data"]


def assert_metrics_equal(
    actual: dict[str, Any], rows: list[dict], names: list[str], approximate: Any = ()
) -> None:
    """Each metric equals the oracle; those named in ``approximate`` (a rollup answer's
    ``meta.approximate``) are held to their sketch's stated bound instead."""
    for name in names:
        if name in approximate:
            assert oracle.within_sketch_bound(rows, name, actual[name]), name
            continue
        expected = oracle.metric(rows, name)
        if expected is None:
            assert actual[name] is None, name
        elif isinstance(expected, float):
            assert actual[name] == pytest.approx(expected, rel=1e-9, abs=1e-12), name
        else:
            assert actual[name] == expected, name


def grouped(data: dict[str, Any], dimension: str) -> dict[Any, dict[str, Any]]:
    """One 1w bucket: each group's single point is its total."""
    got: dict[Any, dict[str, Any]] = {}
    for point in data["time_series"]:
        key = point["groups"][dimension]
        assert key not in got, key
        got[key] = point["metrics"]
    return got


# --- the fixture data means something ---------------------------------------------------


def test_the_rows_hold_every_absent_case_the_metrics_must_leave_out():
    assert any(not r["is_streaming"] and r["ttft_ms"] > 0 for r in ROWS)
    assert any(r["is_streaming"] and r["ttft_ms"] == 0 for r in ROWS)
    assert any(oracle.has_ttft(r) and r["ttft_ms"] >= r["response_time_ms"] for r in ROWS)
    assert any(r["routing_decision"] == "" for r in ROWS)
    assert any(r["finish_reason"] == "" for r in ROWS)
    assert any(not r["tags"] for r in ROWS)
    assert {r["routing_decision"] for r in ROWS} == {*ROUTING_DECISIONS, ""}
    assert {r["finish_reason"] for r in ROWS} == {*FINISH_REASONS, ""}
    assert any(r["tags"].get("team") == oracle.HOSTILE_TAG_VALUE for r in ROWS)


# --- metrics ----------------------------------------------------------------------------


def test_every_llm_metric_over_all_rows_matches_python(superuser_client):
    data = ok(superuser_client, metrics=LLM_METRICS, time_bucket="1d")
    assert_metrics_equal(data["summary"], ALL_ROWS, LLM_METRICS)
    assert data["meta"]["units"] == {name: METRICS[name].unit for name in LLM_METRICS}


def test_every_llm_metric_per_bucket_and_model_matches_python(superuser_client):
    data = ok(
        superuser_client,
        metrics=LLM_METRICS,
        time_bucket="6h",
        group_by=["model_name"],
        timezone="Asia/Kolkata",
        fill_gaps=False,
    )
    expected: dict[tuple[str, Any], list] = defaultdict(list)
    for row in ALL_ROWS:
        bucket = oracle.iso(
            oracle.local_bucket(row["timestamp"], "6h", "Asia/Kolkata"), "Asia/Kolkata"
        )
        expected[(bucket, oracle.dimension_value(row, "model_name"))].append(row)
    got = {(p["timestamp"], p["groups"]["model_name"]): p["metrics"] for p in data["time_series"]}
    assert set(got) == set(expected)
    for key, rows in expected.items():
        assert_metrics_equal(got[key], rows, LLM_METRICS)


def test_rows_without_llm_fields_are_absent_not_zero(superuser_client):
    data = ok(superuser_client, metrics=LLM_METRICS, time_bucket="1d", project_ids=[str(LEGACY)])
    summary = data["summary"]
    assert summary["total_requests"] == len(LEGACY_ROWS)
    for name in LLM_METRICS:
        assert summary[name] == (0 if name in ADDITIVE else None), name


def test_empty_buckets_show_zero_for_counts_and_null_for_rates_and_percentiles(superuser_client):
    start = END + timedelta(days=3)  # no rows
    data = ok(
        superuser_client,
        metrics=LLM_METRICS,
        time_bucket="1h",
        start_time=start.isoformat(),
        end_time=(start + timedelta(hours=3)).isoformat(),
    )
    assert len(data["time_series"]) == 3
    for point in data["time_series"]:
        assert point["metrics"] == {n: (0 if n in ADDITIVE else None) for n in LLM_METRICS}


def test_every_metric_is_zero_or_null_over_no_rows_as_the_registry_says(superuser_client):
    start = END + timedelta(days=3)  # no rows
    data = ok(
        superuser_client,
        metrics=list(METRICS),
        time_bucket="1h",
        start_time=start.isoformat(),
        end_time=(start + timedelta(hours=1)).isoformat(),
    )
    (point,) = data["time_series"]
    # Written out, not read from the registry's flag: counts and sums are 0 over no rows.
    counts = {
        "total_requests", "error_count", "blocked_requests", "total_tokens", "input_tokens",
        "output_tokens", "total_cost", "unique_users", "unique_ips", "bot_requests",
        "requests_per_second", *ADDITIVE,
    }  # fmt: skip
    assert counts == {name for name, m in METRICS.items() if m.additive or m.derived_from}
    assert point["metrics"] == {n: (0 if n in counts else None) for n in METRICS}
    assert data["summary"] == {
        **{n: (0 if n in counts else None) for n in METRICS},
        "total_errors": 0,
    }


def test_a_tag_dimension_is_one_registry_lookup_everywhere():
    from analytics.query.registry import DIMENSIONS, dimension
    from analytics.query.shaper import group_values

    tag = dimension("tag:team")
    assert (tag.type, tag.empty, tag.operators) == (
        "string",
        "",
        DIMENSIONS["model_name"].operators,
    )
    assert dimension("tag:team") == tag  # a function of the name: binds once per key
    assert dimension("tag:Team").bound != tag.bound
    assert group_values(("tag:team", "is_streaming"), ("", "true")) == {
        "tag:team": None,
        "is_streaming": True,
    }
    for name in ("tag:", "tag:9", "tag:a b", "tags", "tag:" + "k" * 65):
        with pytest.raises(KeyError):
            dimension(name)


def test_output_tokens_per_second_is_the_ratio_of_sums_not_a_mean_of_rates(superuser_client):
    data = ok(
        superuser_client,
        metrics=["output_tokens_per_second"],
        time_bucket="1w",
        group_by=["model_name"],
        project_ids=[str(RATIO)],
    )
    by_model = grouped(data, "model_name")
    assert by_model["a"]["output_tokens_per_second"] == pytest.approx(1010 / 11)
    assert by_model["b"]["output_tokens_per_second"] == pytest.approx(100.0)
    summary = data["summary"]["output_tokens_per_second"]
    assert summary == pytest.approx(1510 / 16)
    # What the wrong formulas would give: a mean of per-request rates, of group values.
    assert summary != pytest.approx((1000 + 1 + 100) / 3)
    assert summary != pytest.approx((1010 / 11 + 100) / 2)
    assert by_model["a"]["output_tokens_per_second"] != pytest.approx(500.5)
    assert summary == pytest.approx(oracle.metric(RATIO_ROWS, "output_tokens_per_second"))


def test_cost_per_1k_tokens_is_null_without_tokens_and_a_ratio_of_sums_with_them(
    superuser_client,
):
    none = ok(
        superuser_client,
        metrics=["cost_per_1k_tokens"],
        time_bucket="1d",
        project_ids=[str(RATIO)],
    )
    assert none["summary"]["cost_per_1k_tokens"] is None  # RATIO rows carry no total_tokens
    everything = ok(superuser_client, metrics=["cost_per_1k_tokens"], time_bucket="1d")
    tokens = sum(r["total_tokens"] for r in ALL_ROWS)
    assert everything["summary"]["cost_per_1k_tokens"] == pytest.approx(
        sum(r["cost"] for r in ALL_ROWS) / tokens * 1000, rel=1e-9
    )


# --- dimensions -------------------------------------------------------------------------

GROUP_DIMENSIONS = [
    "routing_decision",
    "finish_reason",
    "model_version",
    "is_streaming",
    "tag:env",
    "tag:team",
    "tag:feature",
    "tag:cost.center-id",
    "tag:nobody_has_this",
]


@pytest.mark.parametrize("dimension", GROUP_DIMENSIONS)
def test_group_by_each_llm_dimension_matches_rows(superuser_client, dimension):
    data = ok(
        superuser_client,
        metrics=["total_requests", *LLM_METRICS],
        time_bucket="1w",
        group_by=[dimension],
        fill_gaps=False,
    )
    expected: dict[Any, list] = defaultdict(list)
    for row in ALL_ROWS:
        expected[oracle.dimension_value(row, dimension)].append(row)
    got = grouped(data, dimension)
    assert set(got) == set(expected)
    for key, rows in expected.items():
        assert_metrics_equal(got[key], rows, ["total_requests", *LLM_METRICS])


def test_a_tag_key_no_row_has_is_one_null_group_of_every_row(superuser_client):
    data = ok(superuser_client, time_bucket="1w", group_by=["tag:nobody_has_this"])
    assert [p["groups"] for p in data["time_series"]] == [{"tag:nobody_has_this": None}]
    assert data["time_series"][0]["metrics"]["total_requests"] == len(ALL_ROWS)


def test_two_tags_grouped_and_filtered_bind_each_key_once(superuser_client):
    data = ok(
        superuser_client,
        metrics=["total_requests", "cache_hit_rate"],
        time_bucket="1w",
        group_by=["tag:env", "tag:team"],
        filters={"tag:env": {"op": "ne", "value": "dev"}, "tag:feature": "chat"},
        fill_gaps=False,
    )
    expected: dict[tuple, list] = defaultdict(list)
    for row in ALL_ROWS:
        if row["tags"].get("env", "") != "dev" and row["tags"].get("feature") == "chat":
            key = (oracle.dimension_value(row, "tag:env"), oracle.dimension_value(row, "tag:team"))
            expected[key].append(row)
    got = {
        (p["groups"]["tag:env"], p["groups"]["tag:team"]): p["metrics"] for p in data["time_series"]
    }
    assert set(got) == set(expected)
    for key, rows in expected.items():
        assert_metrics_equal(got[key], rows, ["total_requests", "cache_hit_rate"])


def test_top_n_by_a_tag_with_other_and_compare_previous(superuser_client):
    mid = START + timedelta(hours=24)
    data = ok(
        superuser_client,
        metrics=["total_requests", "p95_ttft", "fallback_rate"],
        time_bucket="1w",
        group_by=["tag:team"],
        top_n=2,
        include_other=True,
        start_time=mid.isoformat(),
        compare_previous=True,
        fill_gaps=False,
    )
    current = [r for r in ALL_ROWS if mid <= r["timestamp"] < END]
    by_team: dict[Any, list] = defaultdict(list)
    for row in current:
        by_team[oracle.dimension_value(row, "tag:team")].append(row)
    # Ties as the SQL orders them: by the group value, where the empty (null) one is "".
    ranked = sorted(by_team, key=lambda k: (-len(by_team[k]), "" if k is None else k))
    got = grouped(data, "tag:team")
    assert list(got) == [*ranked[:2], "other"]
    for key in ranked[:2]:
        assert_metrics_equal(
            got[key], by_team[key], ["total_requests", "p95_ttft", "fallback_rate"]
        )
    rest = [r for k in ranked[2:] for r in by_team[k]]
    assert_metrics_equal(got["other"], rest, ["total_requests", "p95_ttft", "fallback_rate"])
    previous = [r for r in ALL_ROWS if START <= r["timestamp"] < mid]
    assert_metrics_equal(
        data["summary"]["previous_period"]["metrics"],
        previous,
        ["total_requests", "p95_ttft", "fallback_rate"],
    )


def test_gap_filling_with_a_tag_group(superuser_client):
    start, end = END - timedelta(hours=2), END + timedelta(hours=2)
    names = ["total_requests", "avg_ttft", "cached_input_tokens"]
    data = ok(
        superuser_client,
        metrics=names,
        time_bucket="1h",
        group_by=["tag:env"],
        start_time=start.isoformat(),
        end_time=end.isoformat(),
    )
    in_range = [r for r in ALL_ROWS if start <= r["timestamp"] < end]
    groups = {oracle.dimension_value(r, "tag:env") for r in in_range}
    assert {p["groups"]["tag:env"] for p in data["time_series"]} == groups
    assert len(data["time_series"]) == 4 * len(groups)  # every bucket for every group
    for point in data["time_series"]:
        bucket = datetime.fromisoformat(point["timestamp"].replace("Z", "+00:00"))
        rows = [
            r
            for r in in_range
            if bucket <= r["timestamp"] < bucket + timedelta(hours=1)
            and oracle.dimension_value(r, "tag:env") == point["groups"]["tag:env"]
        ]
        if rows:
            assert_metrics_equal(point["metrics"], rows, names)
        else:
            assert point["metrics"] == {
                "total_requests": 0,
                "avg_ttft": None,
                "cached_input_tokens": 0,
            }


# --- filters ----------------------------------------------------------------------------

HOSTILE = oracle.HOSTILE_TAG_VALUE


def _tag(row: dict[str, Any], key: str) -> str:
    return row["tags"].get(key, "")


FILTER_CASES = [
    ({"routing_decision": "fallback"}, lambda r: r["routing_decision"] == "fallback"),
    (
        {"routing_decision": ["cached", "retry"]},
        lambda r: r["routing_decision"] in ("cached", "retry"),
    ),
    (
        {"routing_decision": {"op": "is_empty", "value": True}},
        lambda r: r["routing_decision"] == "",
    ),
    (
        {"finish_reason": {"op": "not_in", "value": ["stop", "length"]}},
        lambda r: r["finish_reason"] not in ("stop", "length"),
    ),
    ({"finish_reason": {"op": "is_empty", "value": False}}, lambda r: r["finish_reason"] != ""),
    (
        {"model_version": {"op": "starts_with", "value": "2024"}},
        lambda r: r["model_version"].startswith("2024"),
    ),
    ({"is_streaming": True}, lambda r: r["is_streaming"]),
    ({"is_streaming": {"op": "ne", "value": "true"}}, lambda r: not r["is_streaming"]),
    ({"tag:env": "prod"}, lambda r: _tag(r, "env") == "prod"),
    ({"tag:env": ["staging", "dev"]}, lambda r: _tag(r, "env") in ("staging", "dev")),
    ({"tag:env": {"op": "ne", "value": "prod"}}, lambda r: _tag(r, "env") != "prod"),
    (
        {"tag:team": {"op": "not_in", "value": ["search", HOSTILE]}},
        lambda r: _tag(r, "team") not in ("search", HOSTILE),
    ),
    ({"tag:team": {"op": "contains", "value": "路径"}}, lambda r: "路径" in _tag(r, "team")),
    (
        {"tag:feature": {"op": "starts_with", "value": "100%"}},
        lambda r: _tag(r, "feature").startswith("100%"),
    ),
    (
        {"tag:team": {"op": "regex", "value": "^(s|a)[a-z]+$"}},
        lambda r: re.search("^(s|a)[a-z]+$", _tag(r, "team")) is not None,
    ),
    ({"tag:feature": {"op": "is_empty", "value": True}}, lambda r: _tag(r, "feature") == ""),
    ({"tag:cost.center-id": "cc-2"}, lambda r: _tag(r, "cost.center-id") == "cc-2"),
    # Hostile values travel as bound parameters and match exactly the rows holding them.
    ({"tag:team": HOSTILE}, lambda r: _tag(r, "team") == HOSTILE),
    ({"tag:team": {"op": "contains", "value": "{f1:String}"}}, lambda r: "{f1" in _tag(r, "team")),
    ({"tag:nobody_has_this": {"op": "is_empty", "value": True}}, lambda r: True),
    (
        {"or": [{"tag:env": "dev"}, {"not": {"routing_decision": "primary"}}]},
        lambda r: _tag(r, "env") == "dev" or r["routing_decision"] != "primary",
    ),
]


@pytest.mark.parametrize(
    ("filters", "predicate"), FILTER_CASES, ids=[str(i) for i in range(len(FILTER_CASES))]
)
def test_llm_filters_select_exactly_the_matching_rows(superuser_client, filters, predicate):
    data = ok(
        superuser_client,
        metrics=["total_requests", "p95_ttft", "fallback_rate", "truncation_rate"],
        time_bucket="1d",
        filters=filters,
    )
    rows = [r for r in ALL_ROWS if predicate(r)]
    assert rows, "the case must select some rows to mean anything"
    assert_metrics_equal(
        data["summary"], rows, ["total_requests", "p95_ttft", "fallback_rate", "truncation_rate"]
    )


def test_a_hostile_tag_value_matching_nothing_answers_zero(superuser_client):
    value = "'; DROP TABLE gateway_analytics; --"
    data = ok(superuser_client, time_bucket="1d", filters={"tag:team": value})
    assert data["summary"]["total_requests"] == 0
    assert ok(superuser_client, time_bucket="1d")["summary"]["total_requests"] == len(ALL_ROWS)


HOSTILE_KEYS = [
    "tag:",
    "tag:1starts_with_a_digit",
    "tag:has space",
    "tag:quote'd",
    "tag:a]['b",
    "tag:{f1:String}",
    "tag:x" + "y" * 64,  # 65 characters
    "tag:new\nline",
    "tag:ünï",
    "tag:env\n",
]


@pytest.mark.parametrize("name", HOSTILE_KEYS)
def test_hostile_tag_keys_in_group_by_are_a_400_naming_the_field(superuser_client, name):
    response = post(superuser_client, time_bucket="1d", group_by=[name])
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert any(path.startswith("group_by") for path in error["details"]), error
    assert "tag" in error["message"]
    assert "[A-Za-z_]" in error["message"]


@pytest.mark.parametrize("name", HOSTILE_KEYS)
def test_hostile_tag_keys_in_filters_are_a_400_naming_the_field(superuser_client, name):
    response = post(superuser_client, time_bucket="1d", filters={"and": [{name: "x"}]})
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert any(path.startswith("filters.and[0].tag:") for path in error["details"])
    assert "[A-Za-z_]" in error["message"]


@pytest.mark.parametrize(
    ("filters", "field", "text"),
    [
        ({"routing_decision": "fell_back"}, "filters.routing_decision", "primary, fallback"),
        ({"finish_reason": {"op": "contains", "value": "st"}}, "filters.finish_reason", "is_empty"),
        ({"tag:env": {"op": "gt", "value": "a"}}, "filters.tag:env", "starts_with"),
        ({"tag:env": 5}, "filters.tag:env", "a string"),
        ({"is_streaming": "yes"}, "filters.is_streaming", "true or false"),
        ({"tags": "x"}, "filters.tags", "tag:<key>"),
    ],
)
def test_wrong_llm_filter_values_are_a_400_naming_the_field(superuser_client, filters, field, text):
    response = post(superuser_client, time_bucket="1d", filters=filters)
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert field in error["details"], error
    assert text in error["message"]


def test_an_unknown_dimension_lists_the_tag_form(superuser_client):
    response = post(superuser_client, time_bucket="1d", group_by=["tags"])
    assert response.status_code == 400
    assert "tag:<key>" in response.json()["error"]["message"]


# --- schema endpoint and OpenAPI --------------------------------------------------------


def test_schema_endpoint_documents_the_llm_metrics_and_the_tag_form(superuser_client):
    data = superuser_client.get("/gateway/analytics/schema").json()["data"]
    metrics = {m["name"]: m for m in data["metrics"]}
    assert set(LLM_METRICS) <= set(metrics)
    assert metrics["output_tokens_per_second"]["unit"] == "tokens/s"
    dimensions = {d["name"]: d for d in data["dimensions"]}
    assert dimensions["routing_decision"]["values"] == list(ROUTING_DECISIONS)
    assert "is_empty" in dimensions["finish_reason"]["operators"]
    assert dimensions["is_streaming"]["type"] == "boolean"
    (tag,) = data["dynamic_dimensions"]
    assert tag["form"] == "tag:<key>"
    assert tag["key_pattern"] == "^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"
    assert "regex" in tag["operators"]


def test_openapi_group_by_accepts_registry_names_and_the_tag_pattern(client):
    document = client.get("/api/schema/?format=json").json()
    schemas = document["components"]["schemas"]
    request = schemas.get("AnalyticsRequestRequest") or schemas["AnalyticsRequest"]
    item = request["properties"]["group_by"]["items"]
    named, pattern = item["anyOf"]
    assert named == {"$ref": "#/components/schemas/AnalyticsDimensionEnum"}
    assert "routing_decision" in schemas["AnalyticsDimensionEnum"]["enum"]
    assert re.fullmatch(pattern["pattern"].strip("^$"), "tag:cost.center-id")
    assert "p95_ttft" in schemas["AnalyticsMetricEnum"]["enum"]


# --- the llm dashboard view -------------------------------------------------------------


def test_llm_dashboard_view_answers_the_rows_numbers_per_model(superuser_client, monkeypatch):
    now = END + timedelta(minutes=2)  # the window is the last 24 hours of the data
    monkeypatch.setattr(response_cache, "clock", lambda: now.timestamp())
    project = oracle.PROJECTS[0]
    response = superuser_client.get(f"/gateway/dashboards/llm?project_id={project}")
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    view = dashboards.VIEWS["llm"]
    metrics = view.params["metrics"]
    rows = [
        r
        for r in ALL_ROWS
        if r["project_id"] == project and END - timedelta(hours=24) <= r["timestamp"] < END
    ]
    # The dashboard reads the rollup: its sketch metrics are held to their bound.
    assert data["meta"]["source"] != "raw"
    assert_metrics_equal(data["summary"], rows, metrics, data["meta"]["approximate"])
    by_model: dict[Any, list] = defaultdict(list)
    for row in rows:
        by_model[oracle.dimension_value(row, "model_name")].append(row)
    totals: dict[Any, dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    for point in data["time_series"]:
        totals[point["groups"]["model_name"]]["total_requests"] += point["metrics"][
            "total_requests"
        ]
    assert {k: v["total_requests"] for k, v in totals.items()} == {
        k: len(v) for k, v in by_model.items()
    }
    assert len(data["time_series"]) == 24 * len(by_model)  # hourly, gaps filled
    hour = oracle.iso(START + timedelta(hours=30))
    for point in data["time_series"]:
        if point["timestamp"] == hour:
            model_rows = [
                r
                for r in by_model[point["groups"]["model_name"]]
                if oracle.iso(oracle.local_bucket(r["timestamp"], "1h")) == hour
            ]
            assert_metrics_equal(point["metrics"], model_rows, metrics, data["meta"]["approximate"])


# --- top routes and client analytics ----------------------------------------------------

WINDOW = {"start_time": START.isoformat(), "end_time": END.isoformat()}


def test_top_routes_carry_an_exact_p95_ttft_per_route(superuser_client):
    response = superuser_client.get(
        "/gateway/top-routes", {**WINDOW, "limit": 100, "group_ids": "false", "exact": "true"}
    )
    assert response.status_code == 200, response.json()
    routes = response.json()["data"]["routes"]
    by_route: dict[tuple[str, str], list] = defaultdict(list)
    for row in ALL_ROWS:
        by_route[(row["path"], row["method"])].append(row)
    assert len(routes) == len(by_route)
    for route in routes:
        expected = oracle.metric(by_route[(route["path"], route["method"])], "p95_ttft")
        assert route["p95_ttft"] == expected, route["path"]
    assert any(route["p95_ttft"] is not None for route in routes)


def test_top_routes_p95_ttft_is_null_for_a_route_without_streamed_requests(superuser_client):
    response = superuser_client.get("/gateway/top-routes", {**WINDOW, "project_ids": str(LEGACY)})
    routes = response.json()["data"]["routes"]
    assert [r["p95_ttft"] for r in routes] == [None]


def test_clients_carry_cache_hit_rate_and_cost_per_1k_tokens(superuser_client):
    response = superuser_client.get("/gateway/client-analytics", {**WINDOW, "limit": 1000})
    assert response.status_code == 200, response.json()
    clients = response.json()["data"]["clients"]
    by_client: dict[str, list] = defaultdict(list)
    for row in ALL_ROWS:
        if row["client_id"]:
            by_client[row["client_id"]].append(row)
    assert {c["client_id"] for c in clients} == set(by_client)
    for client in clients:
        rows = by_client[client["client_id"]]
        for name in ("cache_hit_rate", "cost_per_1k_tokens"):
            expected = oracle.metric(rows, name)
            if expected is None:
                assert client[name] is None, (client["client_id"], name)
            else:
                assert client[name] == pytest.approx(expected, rel=1e-9), name


def test_client_rates_are_null_when_nothing_was_recorded(superuser_client):
    response = superuser_client.get(
        "/gateway/client-analytics", {**WINDOW, "project_ids": str(LEGACY)}
    )
    (client,) = response.json()["data"]["clients"]
    assert client["client_id"] == "legacy-key"
    assert client["cache_hit_rate"] is None
    assert client["cost_per_1k_tokens"] is None  # no tokens at all
