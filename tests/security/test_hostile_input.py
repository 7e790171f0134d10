"""Hostile input: huge and negative numbers, wrong types, very long strings, malformed and
oversized bodies on every data endpoint are a 4xx in the error envelope, never a 500, and
none of them reaches ClickHouse."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import make_row
from tests.security.helpers import QuerySpy, assert_error_envelope, module_rows, uid

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

P1 = uid("hostile-1")
WINDOW = {"start_time": "2025-03-03T00:00:00Z", "end_time": "2025-03-04T00:00:00Z"}
BIG = 10**30
LONG = "x" * 100_000


_traffic = module_rows([make_row(project_id=P1, timestamp=datetime(2025, 3, 3, 12, tzinfo=UTC))])


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> QuerySpy:
    return QuerySpy().install(monkeypatch)


@pytest.fixture
def p1_client(api_client_factory: Callable[..., Any]) -> Any:
    return api_client_factory([P1])


def refused(response: Any, spy: QuerySpy, *statuses: int) -> dict[str, Any]:
    body = assert_error_envelope(response, *(statuses or (400,)))
    assert spy.count == 0, spy.sql
    return body


# --- POST /gateway/analytics -----------------------------------------------------------

ANALYTICS_BODIES: dict[str, Any] = {
    "top-n-huge": {"group_by": ["path"], "top_n": BIG},
    "top-n-negative": {"group_by": ["path"], "top_n": -5},
    "top-n-zero": {"group_by": ["path"], "top_n": 0},
    "top-n-text": {"group_by": ["path"], "top_n": "many"},
    "top-n-fraction": {"group_by": ["path"], "top_n": 1.5},
    "top-n-list": {"group_by": ["path"], "top_n": [3]},
    "top-n-object": {"group_by": ["path"], "top_n": {"n": 3}},
    "filter-int-huge": {"filters": {"status_code": BIG}},
    "filter-int-over-64-bits": {"filters": {"status_code": {"op": "gt", "value": 2**63}}},
    "filter-int-under-64-bits": {"filters": {"status_code": {"op": "lt", "value": -(2**63) - 1}}},
    "filter-int-fraction": {"filters": {"status_code": 200.5}},
    "filter-int-text": {"filters": {"status_code": "abc"}},
    "filter-int-bool": {"filters": {"status_code": True}},
    "filter-int-null": {"filters": {"status_code": None}},
    "filter-int-object": {"filters": {"status_code": {"a": 1}}},
    "filter-bool-text": {"filters": {"is_blocked": "yes"}},
    "filter-uuid-text": {"filters": {"model_id": "not-a-uuid"}},
    "filter-uuid-number": {"filters": {"model_id": 7}},
    "filter-enum-unknown": {"filters": {"status_class": "6xx"}},
    "filter-in-empty": {"filters": {"path": []}},
    "filter-in-too-many": {"filters": {"path": [f"/p{i}" for i in range(1001)]}},
    "filter-in-nested-list": {"filters": {"path": [["/a"]]}},
    "filter-op-without-value": {"filters": {"path": {"op": "ne"}}},
    "filter-op-extra-key": {"filters": {"path": {"op": "eq", "value": "/a", "x": 1}}},
    "filter-op-wrong-type": {"filters": {"status_code": {"op": "contains", "value": "5"}}},
    "filter-is-empty-text": {"filters": {"path": {"op": "is_empty", "value": "yes"}}},
    "filter-string-too-long": {"filters": {"path": LONG}},
    "filter-contains-empty": {"filters": {"path": {"op": "contains", "value": ""}}},
    "filter-regex-invalid": {"filters": {"path": {"op": "regex", "value": "("}}},
    "filter-regex-lookahead": {"filters": {"path": {"op": "regex", "value": "(?=a)"}}},
    "filter-regex-backreference": {"filters": {"path": {"op": "regex", "value": "(a)\\1"}}},
    "filter-or-empty": {"filters": {"or": []}},
    "filter-or-object": {"filters": {"or": {"path": "/a"}}},
    "filter-or-too-many": {"filters": {"or": [{"path": "/a"}] * 101}},
    "filter-not-list": {"filters": {"not": [{"path": "/a"}]}},
    "filter-too-deep": {"filters": {"not": {"not": {"not": {"not": {"not": {"not": {}}}}}}}},
    "filters-list": {"filters": [{"path": "/a"}]},
    "filters-string": {"filters": "path = '/a'"},
    "filters-number": {"filters": 1},
    "metrics-string": {"metrics": "total_requests"},
    "metrics-empty": {"metrics": []},
    "metrics-number": {"metrics": [1]},
    "metrics-too-many": {"metrics": ["total_requests"] * 1000},
    "group-by-string": {"group_by": "path"},
    "group-by-too-many": {"group_by": ["path", "method", "city", "region", "os", "browser"]},
    "group-by-duplicate": {"group_by": ["path", "path"]},
    "group-by-nested": {"group_by": [["path"]]},
    "timezone-long": {"timezone": LONG},
    "timezone-number": {"timezone": 5},
    "timezone-null": {"timezone": None},
    "timezone-posix": {"timezone": "EST5EDT,M3.2.0,M11.1.0"},
    "timezone-path": {"timezone": "../../etc/passwd"},
    "time-bucket-unknown": {"time_bucket": "1s"},
    "time-bucket-too-fine": {
        "start_time": "2025-01-01T00:00:00Z",
        "end_time": "2025-03-31T00:00:00Z",
        "time_bucket": "1m",
    },
    "start-time-number": {"start_time": 1735689600},
    "start-time-object": {"start_time": {"year": 2025}},
    "start-time-long": {"start_time": "2025-03-03T00:00:00Z" + "0" * 10_000},
    "start-time-year-9999": {"start_time": "9999-01-01T00:00:00Z"},
    "start-time-year-1": {"start_time": "0001-01-01T00:00:00Z"},
    "start-time-feb-30": {"start_time": "2025-02-30T00:00:00Z"},
    "start-time-offset-huge": {"start_time": "2025-03-03T00:00:00+99:00"},
    "end-before-start": {"start_time": WINDOW["end_time"], "end_time": WINDOW["start_time"]},
    "range-too-long": {"start_time": "2020-01-01T00:00:00Z", "end_time": "2025-01-01T00:00:00Z"},
    "project-ids-number": {"project_ids": 5},
    "project-ids-objects": {"project_ids": [{"id": str(P1)}]},
    "project-ids-too-many": {"project_ids": [str(uuid.uuid4()) for _ in range(1001)]},
    "model-ids-nulls": {"model_ids": [None]},
    "fill-gaps-text": {"fill_gaps": "maybe"},
    "compare-previous-number": {"compare_previous": 7},
    "include-other-without-top-n": {"include_other": True},
    "unknown-field": {"nonsense": 1},
    "unknown-field-typo-project-id": {"project_id": str(P1)},
}


@pytest.mark.parametrize("case", list(ANALYTICS_BODIES))
def test_bad_analytics_bodies_are_400(p1_client, spy, case):
    body = {**WINDOW, **ANALYTICS_BODIES[case]}
    refused(p1_client.post("/gateway/analytics", body, format="json"), spy)


@pytest.mark.parametrize("pattern", ["a{1001}", "x\\Z", "a*+", "(?#c)"])
def test_a_regex_re2_refuses_is_400(p1_client, spy, pattern):
    body = {**WINDOW, "filters": {"path": {"op": "regex", "value": pattern}}}
    refused(p1_client.post("/gateway/analytics", body, format="json"), spy)


RAW_BODIES: dict[str, Any] = {
    "array": "[]",
    "string": '"text"',
    "null": "null",
    "number": "42",
    "truncated": '{"start_time": ',
    "not-json": "start_time=2025",
    "nan": '{"start_time": "2025-03-03T00:00:00Z", "end_time": "2025-03-04T00:00:00Z", '
    '"filters": {"status_code": NaN}}',
    "infinity": '{"start_time": "2025-03-03T00:00:00Z", "end_time": "2025-03-04T00:00:00Z", '
    '"top_n": Infinity, "group_by": ["path"]}',
    "number-5000-digits": '{"start_time": "2025-03-03T00:00:00Z", '
    '"end_time": "2025-03-04T00:00:00Z", "top_n": ' + "9" * 5000 + ', "group_by": ["path"]}',
    "duplicate-keys": '{"start_time": "2025-03-03T00:00:00Z", "end_time": "2025-03-04T00:00:00Z",'
    ' "top_n": 1, "top_n": -1, "group_by": ["path"]}',
    "lone-surrogate": '{"start_time": "2025-03-03T00:00:00Z", "end_time": "2025-03-04T00:00:00Z",'
    ' "timezone": "\\ud800"}',
    "invalid-utf8": b'{"start_time": "\xff\xfe"}',
    "deep-filters-50": json.dumps(
        {**WINDOW, "filters": json.loads('{"not": ' * 50 + "{}" + "}" * 50)}
    ),
}


@pytest.mark.parametrize("case", list(RAW_BODIES))
def test_malformed_analytics_bodies_are_400(p1_client, spy, case):
    raw = RAW_BODIES[case]
    data = raw if isinstance(raw, bytes) else raw.encode()
    response = p1_client.post("/gateway/analytics", data, content_type="application/json")
    refused(response, spy)


def _nested(depth: int) -> bytes:
    return ('{"filters": ' + '{"not": ' * depth + "{}" + "}" * depth + "}").encode()


@pytest.mark.parametrize(
    "endpoint", ["/gateway/analytics", "/gateway/saved-queries", "/gateway/blocking-rules"]
)
def test_json_nested_a_thousand_levels_is_400_on_every_post(superuser_client, spy, endpoint):
    response = superuser_client.post(endpoint, _nested(1000), content_type="application/json")
    refused(response, spy)


@pytest.mark.parametrize(
    "endpoint", ["/gateway/analytics", "/gateway/saved-queries", "/gateway/blocking-rules"]
)
def test_an_oversized_body_is_a_4xx_envelope(superuser_client, spy, endpoint):
    body = json.dumps({**WINDOW, "filters": {"path": ["x" * 1000] * 20_000}}).encode()
    response = superuser_client.post(endpoint, body, content_type="application/json")
    refused(response, spy, 400, 413)


def test_an_oversized_body_is_413(p1_client, spy):
    body = json.dumps({**WINDOW, "filters": {"path": ["x" * 1000] * 20_000}}).encode()
    response = p1_client.post("/gateway/analytics", body, content_type="application/json")
    refused(response, spy, 413)


def test_a_body_of_another_media_type_is_415(p1_client, spy):
    response = p1_client.post("/gateway/analytics", "start_time=x", content_type="text/plain")
    refused(response, spy, 415)


def test_numbers_as_strings_are_treated_alike_everywhere(p1_client, spy):
    top_n = p1_client.post(
        "/gateway/analytics", {**WINDOW, "group_by": ["path"], "top_n": "5"}, format="json"
    )
    status = p1_client.post(
        "/gateway/analytics", {**WINDOW, "filters": {"status_code": "200"}}, format="json"
    )
    assert top_n.status_code == status.status_code
    assert top_n.status_code in (200, 400)


# --- GET endpoints -----------------------------------------------------------------------

GET_ENDPOINTS = ("geographical-stats", "top-routes", "client-analytics", "blocking-stats")
GET_PARAMS: dict[str, dict[str, Any]] = {
    "limit-huge": {"limit": str(BIG)},
    "limit-negative": {"limit": "-1"},
    "limit-zero": {"limit": "0"},
    "limit-text": {"limit": "ten"},
    "limit-fraction": {"limit": "1.5"},
    "limit-blank": {"limit": ""},
    "limit-nul": {"limit": "1\x00"},
    "limit-long": {"limit": "9" * 5000},
    "start-garbage": {"start_time": "yesterday"},
    "start-long": {"start_time": LONG},
    "start-year-9999": {"start_time": "9999-01-01T00:00:00Z"},
    "end-before-start": {"start_time": WINDOW["end_time"], "end_time": WINDOW["start_time"]},
    "range-too-long": {"start_time": "2020-01-01T00:00:00Z", "end_time": "2025-01-01T00:00:00Z"},
    "project-ids-garbage": {"project_ids": "p1"},
    "project-ids-too-many": {"project_ids": ",".join(str(uuid.uuid4()) for _ in range(1001))},
    "model-ids-garbage": {"model_ids": "1,2,3"},
    "endpoint-ids-long": {"endpoint_ids": LONG},
}
ORDER_BY = {"order-by-unknown": {"order_by": "1; DROP"}, "order-by-blank": {"order_by": ""}}
GET_ONLY: dict[str, dict[str, dict[str, Any]]] = {
    "top-routes": {
        **ORDER_BY,
        "path-long": {"path": LONG},
        "route-long": {"route": LONG},
        "method-unknown": {"method": "BREW"},
        "group-ids-text": {"group_ids": "maybe"},
        "limit-over-max": {"limit": "101"},
    },
    "client-analytics": {
        **ORDER_BY,
        "offset-negative": {"offset": "-1"},
        "offset-huge": {"offset": str(BIG)},
        "search-long": {"search": LONG},
        "browser-long": {"browser": LONG},
        "os-nul": {"os": "Linux\x00"},
        "device-type-unknown": {"device_type": "toaster"},
        "limit-over-max": {"limit": "1001"},
    },
    "geographical-stats": {
        **ORDER_BY,
        "country-code-long": {"country_code": "USA"},
        "country-code-digits": {"country_code": "12"},
        "limit-over-max": {"limit": "1001"},
    },
    "blocking-stats": {
        "time-bucket-unknown": {"time_bucket": "1s"},
        "time-bucket-too-fine": {
            "start_time": "2025-01-01T00:00:00Z",
            "end_time": "2025-03-31T00:00:00Z",
            "time_bucket": "1m",
        },
        "limit-over-max": {"limit": "1001"},
    },
}


def _get_cases() -> list[Any]:
    cases = [
        pytest.param(endpoint, params, id=f"{endpoint}-{name}")
        for endpoint in GET_ENDPOINTS
        for name, params in GET_PARAMS.items()
    ]
    cases += [
        pytest.param(endpoint, params, id=f"{endpoint}-{name}")
        for endpoint, named in GET_ONLY.items()
        for name, params in named.items()
    ]
    return cases


@pytest.mark.parametrize(("endpoint", "params"), _get_cases())
def test_bad_query_parameters_are_400(p1_client, spy, endpoint, params):
    refused(p1_client.get(f"/gateway/{endpoint}", {**WINDOW, **params}), spy)


@pytest.mark.parametrize("endpoint", GET_ENDPOINTS)
@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"nonsense": "1"}, id="unknown"),
        pytest.param({"project_id": str(P1)}, id="project_id-typo"),
        pytest.param({"project_ids[]": str(P1)}, id="bracketed"),
    ],
)
def test_unknown_query_parameters_are_400(p1_client, spy, endpoint, params):
    refused(p1_client.get(f"/gateway/{endpoint}", {**WINDOW, **params}), spy)


# --- saved queries and dashboards ---------------------------------------------------------

SAVED_BODIES: dict[str, Any] = {
    "params-string": {"params": "limit=5"},
    "params-list": {"params": [1, 2]},
    "params-invalid-for-endpoint": {"params": {**WINDOW, "limit": BIG}},
    "refresh-negative": {"refresh_interval": -1},
    "refresh-huge": {"refresh_interval": BIG},
    "refresh-too-short": {"refresh_interval": 5},
    "name-long": {"name": LONG},
    "name-nul": {"name": "a\x00b"},
    "endpoint-unknown": {"endpoint": "system.tables"},
    "window-unknown": {"time_window": "last_100y"},
    "absolute-without-times": {"params": {}},
    "shared-text": {"is_shared": "perhaps"},
}


@pytest.mark.parametrize("case", list(SAVED_BODIES))
def test_bad_saved_queries_are_400(p1_client, spy, case):
    body = {
        "name": "q",
        "endpoint": "top-routes",
        "time_window": "absolute",
        "params": WINDOW,
        **SAVED_BODIES[case],
    }
    refused(p1_client.post("/gateway/saved-queries", body, format="json"), spy)


def test_a_nul_in_saved_query_params_is_400(p1_client, spy):
    body = {
        "name": "nul",
        "endpoint": "analytics",
        "time_window": "absolute",
        "params": {**WINDOW, "filters": {"path": "a\x00b"}},
    }
    refused(p1_client.post("/gateway/saved-queries", body, format="json"), spy)


@pytest.mark.parametrize(
    "path",
    [
        "/gateway/saved-queries/00000000-0000-0000-0000-000000000000/run",
        "/gateway/saved-queries/not-a-uuid/run",
        "/gateway/saved-queries/" + "a" * 5000 + "/run",
    ],
)
def test_running_a_missing_saved_query_is_404(p1_client, spy, path):
    refused(p1_client.post(path), spy, 404)


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"project_id": ""},
        {"project_id": LONG},
        {"project_id": "1' OR 1=1 --"},
        {"project_id": str(BIG)},
    ],
)
def test_bad_dashboard_project_ids_are_400(p1_client, spy, query):
    refused(p1_client.get("/gateway/dashboards/overview", query), spy)


def test_an_unknown_dashboard_view_is_404(p1_client, spy):
    refused(p1_client.get("/gateway/dashboards/" + "v" * 5000, {"project_id": str(P1)}), spy, 404)


# --- blocking rules (JSON stored in Postgres) ---------------------------------------------

RULE = {"name": "r", "rule_type": "user_agent_blocking", "project_id": str(P1)}
RULE_BODIES: dict[str, Any] = {
    "config-string": {"rule_config": "patterns"},
    "config-unknown-key": {"rule_config": {"patterns": ["a"], "x": 1}},
    "config-patterns-huge": {"rule_config": {"patterns": [LONG]}},
    "priority-huge": {"rule_config": {"patterns": ["a"]}, "priority": BIG},
    "description-nul": {"rule_config": {"patterns": ["a"]}, "description": "a\x00b"},
    "type-unknown": {"rule_type": "nuke", "rule_config": {}},
}


@pytest.mark.parametrize("case", list(RULE_BODIES))
def test_bad_blocking_rules_are_400(superuser_client, spy, case):
    body = {**RULE, **RULE_BODIES[case]}
    refused(superuser_client.post("/gateway/blocking-rules", body, format="json"), spy)


def test_a_nul_in_a_blocking_rule_config_is_400(superuser_client, spy):
    body = {**RULE, "rule_config": {"patterns": ["curl\x00"], "match_type": "substring"}}
    refused(superuser_client.post("/gateway/blocking-rules", body, format="json"), spy)
