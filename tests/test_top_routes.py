"""GET /gateway/top-routes against real chDB rows, checked against Python over the same rows."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from analytics.paths import template_path
from tests.conftest import make_row

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

URL = "/gateway/top-routes"
P1 = uuid.UUID("11111111-1111-4111-8111-111111111111")
P2 = uuid.UUID("22222222-2222-4222-8222-222222222222")
START = "2025-01-01T00:00:00Z"
END = "2025-02-01T00:00:00Z"
WINDOW = {"start_time": START, "end_time": END}

# Values every parameter of every traffic endpoint must survive: a 400 or a correct answer.
HOSTILE = [
    "'",
    '"',
    "'; DROP TABLE gateway_analytics; --",
    "') OR 1=1 --",
    "1 OR 1=1",
    "\\",
    "\\' OR \\'1\\'=\\'1",
    "{limit:UInt32}",
    "%00",
    "\x00",
    "\uff11\uff10",  # full-width digits
    "0x10",
    "true",
    "ünïcødé ☃ \U0001d54f",
    "\u202e\u200b",
    "99999999999999999999999999999999",
    "-1",
    "1e9",
    "NaN",
    "",
    " ",
    "x" * 5000,
    ",".join(str(uuid.uuid4()) for _ in range(10_000)),
]


def exact_quantile(values: list[int], level: float) -> int:
    """ClickHouse quantileExact: the value at index floor(level·n) of the sorted values."""
    ordered = sorted(values)
    return ordered[int(level * len(ordered))]


def _ts(day: int, hour: int = 12) -> datetime:
    return datetime(2025, 1, day, hour, tzinfo=UTC)


def route_rows() -> list[dict[str, Any]]:
    rng = random.Random(7)
    rows = []
    paths = [
        ("POST", lambda: "/v1/chat/completions", 60),
        ("GET", lambda: f"/v1/models/{uuid.uuid4()}", 25),
        ("GET", lambda: f"/v1/files/file-{rng.randrange(10**6)}", 15),
        ("DELETE", lambda: f"/v1/files/file-{rng.randrange(10**6)}", 4),
        ("POST", lambda: "/v1/embeddings", 30),
        ("GET", lambda: f"/v1/users/{rng.randrange(1000)}/keys/{rng.randrange(1000)}", 9),
    ]
    for method, make_path, count in paths:
        for _ in range(count):
            rows.append(
                make_row(
                    project_id=P1,
                    timestamp=_ts(rng.randrange(1, 31), rng.randrange(24)),
                    method=method,
                    path=make_path(),
                    status_code=rng.choice([200, 200, 200, 201, 400, 404, 500, 503]),
                    response_time_ms=rng.randrange(5, 3000),
                    total_tokens=rng.randrange(0, 5000),
                )
            )
    # Another project's traffic, and P1 traffic outside the window: never counted below.
    rows += [make_row(project_id=P2, timestamp=_ts(10), path="/v2/secret") for _ in range(50)]
    rows += [
        make_row(project_id=P1, timestamp=datetime(2025, 2, 1, tzinfo=UTC), path="/v1/late"),
        make_row(project_id=P1, timestamp=datetime(2024, 12, 31, 23, 59, tzinfo=UTC)),
    ]
    return rows


WINDOW_START = datetime(2025, 1, 1, tzinfo=UTC)
WINDOW_END = datetime(2025, 2, 1, tzinfo=UTC)


def expected_routes(
    rows: list[dict[str, Any]], *, projects: tuple[uuid.UUID, ...] = (P1,)
) -> dict[tuple[str, str], dict[str, Any]]:
    """Route metrics computed in Python over the rows the endpoint should count."""
    start, end = WINDOW_START, WINDOW_END
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["project_id"] in projects and start <= row["timestamp"] < end:
            key = (template_path(row["path"]), row["method"])
            groups[key].append(row)
    total = sum(len(g) for g in groups.values())
    out = {}
    for key, group in groups.items():
        times = [r["response_time_ms"] for r in group]
        errors = sum(r["status_code"] >= 400 for r in group)
        out[key] = {
            "path": key[0],
            "method": key[1],
            "request_count": len(group),
            "error_count": errors,
            "error_rate": errors / len(group),
            "avg_response_time": sum(times) / len(times),
            "p95_response_time": exact_quantile(times, 0.95),
            "p99_response_time": exact_quantile(times, 0.99),
            "total_tokens": sum(r["total_tokens"] for r in group),
            "percent": len(group) / total,
        }
    return out


@pytest.fixture
def routes_data(clickhouse):
    rows = route_rows()
    clickhouse(rows)
    return rows


def _get(client, **params):
    # These tests hold the raw path to Python (exact percentiles and distinct counts);
    # tests/test_rollups_geo_routes.py holds the routes_15m rollup path to the raw path.
    params.setdefault("exact", "true")
    response = client.get(URL, {**WINDOW, **params})
    return response, response.json()


def _assert_route_matches(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    for name, value in expected.items():
        if isinstance(value, float):
            assert actual[name] == pytest.approx(value, rel=1e-9), name
        else:
            assert actual[name] == value, name


def test_every_route_metric_matches_python_over_the_same_rows(superuser_client, routes_data):
    response, body = _get(superuser_client, project_ids=str(P1), limit=100)
    assert response.status_code == 200, body
    expected = expected_routes(routes_data)
    routes = body["data"]["routes"]
    assert len(routes) == len(expected)
    for route in routes:
        _assert_route_matches(route, expected[(route["path"], route["method"])])
    assert body["data"]["summary"] == {
        "total_routes": len(expected),
        "total_requests": sum(e["request_count"] for e in expected.values()),
    }


def test_paths_differing_only_by_ids_are_one_route_per_method(superuser_client, routes_data):
    _, body = _get(superuser_client, project_ids=str(P1), limit=100)
    keys = {(r["path"], r["method"]) for r in body["data"]["routes"]}
    assert keys == {
        ("/v1/chat/completions", "POST"),
        ("/v1/models/{id}", "GET"),
        ("/v1/files/{id}", "GET"),
        ("/v1/files/{id}", "DELETE"),
        ("/v1/embeddings", "POST"),
        ("/v1/users/{id}/keys/{id}", "GET"),
    }


def test_percent_sums_to_one_and_counts_all_routes_not_only_the_top(superuser_client, routes_data):
    _, everything = _get(superuser_client, project_ids=str(P1), limit=100)
    assert sum(r["percent"] for r in everything["data"]["routes"]) == pytest.approx(1.0)
    _, top2 = _get(superuser_client, project_ids=str(P1), limit=2)
    assert len(top2["data"]["routes"]) == 2
    assert top2["data"]["summary"] == everything["data"]["summary"]
    assert top2["data"]["routes"] == everything["data"]["routes"][:2]


@pytest.mark.parametrize(
    ("order_by", "key"),
    [
        ("requests", "request_count"),
        ("errors", "error_count"),
        ("error_rate", "error_rate"),
        ("avg_time", "avg_response_time"),
        ("p95_time", "p95_response_time"),
        ("tokens", "total_tokens"),
    ],
)
def test_order_by_ranks_highest_first_with_path_method_tie_break(
    superuser_client, routes_data, order_by, key
):
    _, body = _get(superuser_client, project_ids=str(P1), limit=100, order_by=order_by)
    routes = body["data"]["routes"]
    expected = sorted(
        expected_routes(routes_data).values(), key=lambda r: (-r[key], r["path"], r["method"])
    )
    assert [(r["path"], r["method"]) for r in routes] == [
        (r["path"], r["method"]) for r in expected
    ]


def test_limit_defaults_to_ten_and_cuts_the_list(superuser_client, clickhouse):
    clickhouse([make_row(project_id=P1, timestamp=_ts(5), path=f"/r{i}") for i in range(15)])
    _, body = _get(superuser_client)
    assert len(body["data"]["routes"]) == 10
    assert body["data"]["summary"]["total_routes"] == 15
    _, body = _get(superuser_client, limit=3)
    assert [r["path"] for r in body["data"]["routes"]] == ["/r0", "/r1", "/r10"]


def test_method_filter_is_case_insensitive(superuser_client, routes_data):
    _, body = _get(superuser_client, project_ids=str(P1), method="delete")
    assert [(r["path"], r["method"]) for r in body["data"]["routes"]] == [
        ("/v1/files/{id}", "DELETE")
    ]
    assert body["data"]["routes"][0]["percent"] == 1.0


def test_raw_path_stays_filterable_and_route_filters_by_template(superuser_client, clickhouse):
    clickhouse(
        [
            make_row(project_id=P1, timestamp=_ts(3), method="GET", path="/v1/files/file-1"),
            make_row(project_id=P1, timestamp=_ts(3), method="GET", path="/v1/files/file-1"),
            make_row(project_id=P1, timestamp=_ts(3), method="GET", path="/v1/files/file-2"),
            make_row(project_id=P1, timestamp=_ts(3), method="GET", path="/v1/models"),
        ]
    )
    _, body = _get(superuser_client, path="/v1/files/file-1")
    assert [(r["path"], r["request_count"]) for r in body["data"]["routes"]] == [
        ("/v1/files/{id}", 2)
    ]
    _, body = _get(superuser_client, route="/v1/files/{id}")
    assert [(r["path"], r["request_count"]) for r in body["data"]["routes"]] == [
        ("/v1/files/{id}", 3)
    ]
    _, body = _get(superuser_client, group_ids="false")
    assert [(r["path"], r["request_count"]) for r in body["data"]["routes"]] == [
        ("/v1/files/file-1", 2),
        ("/v1/files/file-2", 1),
        ("/v1/models", 1),
    ]


def test_defaults_cover_the_last_seven_days_when_no_times_are_given(superuser_client, clickhouse):
    now = timezone.now()
    clickhouse(
        [make_row(project_id=P1, timestamp=now - timedelta(days=1), path="/recent")] * 1
        + [make_row(project_id=P1, timestamp=now - timedelta(days=6, hours=23), path="/recent")]
        + [make_row(project_id=P1, timestamp=now - timedelta(days=8), path="/old")]
    )
    response = superuser_client.get(URL)
    body = response.json()
    assert response.status_code == 200, body
    assert [(r["path"], r["request_count"]) for r in body["data"]["routes"]] == [("/recent", 2)]


def test_empty_window_answers_empty_routes(superuser_client, clickhouse):
    _, body = _get(superuser_client)
    assert body == {
        "success": True,
        "data": {
            "routes": [],
            "summary": {"total_routes": 0, "total_requests": 0},
            "meta": {"source": "raw", "approximate": {}},
        },
        "meta": {"served_by": "primary"},
    }


# --- Scope ----------------------------------------------------------------------------------


def test_restricted_client_sees_only_its_projects(api_client_factory, routes_data):
    client = api_client_factory([P2])
    response, body = _get(client, limit=100)
    assert response.status_code == 200, body
    assert [(r["path"], r["request_count"]) for r in body["data"]["routes"]] == [("/v2/secret", 50)]


def test_restricted_client_asking_for_a_foreign_project_gets_403_naming_it(
    api_client_factory, routes_data
):
    client = api_client_factory([P2])
    response, body = _get(client, project_ids=f"{P2},{P1}")
    assert response.status_code == 403
    assert body["success"] is False
    assert str(P1) in body["error"]["message"]
    assert str(P2) not in body["error"]["message"]


def test_anonymous_request_is_401(anonymous_client, routes_data):
    response = anonymous_client.get(URL, WINDOW)
    assert response.status_code == 401
    assert response.json()["success"] is False


def test_each_request_is_audited(superuser_client, routes_data):
    from analytics.access.models import QueryAudit

    _get(superuser_client, project_ids=str(P1), limit=3)
    audit = QueryAudit.objects.get(endpoint="top-routes")
    assert audit.rows_returned == 3
    assert audit.status_code == 200
    assert audit.params["project_ids"] == [str(P1)]


# --- Validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"order_by": "bogus"}, "order_by"),
        ({"method": "BREW"}, "method"),
        ({"project_ids": "not-a-uuid"}, "project_ids"),
        ({"model_ids": f"{P1},nope"}, "model_ids"),
        ({"start_time": END, "end_time": START}, "end_time"),
        ({"start_time": "2024-01-01T00:00:00Z", "end_time": "2025-01-01T00:00:00Z"}, "end_time"),
        ({"start_time": "yesterday"}, "start_time"),
        ({"group_ids": "maybe"}, "group_ids"),
    ],
)
def test_invalid_parameters_are_400_naming_the_field(superuser_client, clickhouse, params, field):
    response, body = _get(superuser_client, **params)
    assert response.status_code == 400, body
    assert body["success"] is False
    assert body["error"]["code"] == "invalid_request"
    assert field in body["error"]["details"]
    assert field in body["error"]["message"]


def test_bad_order_by_lists_the_allowed_values(superuser_client, clickhouse):
    _, body = _get(superuser_client, order_by="x")
    assert "requests, errors, error_rate, avg_time, p95_time, tokens" in body["error"]["message"]


@pytest.mark.parametrize(
    "param",
    [
        "start_time",
        "end_time",
        "project_ids",
        "model_ids",
        "endpoint_ids",
        "limit",
        "order_by",
        "method",
        "path",
        "route",
        "group_ids",
    ],
)
def test_hostile_input_is_a_400_or_a_correct_answer_never_a_500(
    superuser_client, routes_data, param
):
    for value in HOSTILE:
        params = {**WINDOW, "project_ids": str(P1), param: value}
        response = superuser_client.get(URL, params)
        assert response.status_code in (200, 400), (value[:40], response.content[:300])
        body = response.json()
        assert body["success"] is (response.status_code == 200)
        if response.status_code == 200 and param in ("path", "route") and value.strip():
            assert body["data"]["routes"] == [], value[:40]


# --- OpenAPI --------------------------------------------------------------------------------


def test_openapi_documents_the_traffic_endpoints_without_warnings():
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator

    GENERATOR_STATS.reset()
    with GENERATOR_STATS.silence():
        schema = SchemaGenerator().get_schema(request=None, public=True)
    messages = [*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache]
    mine = ("TopRoutes", "ClientAnalytics", "GeoStats", "routes_clients/", "geo/")
    assert [m for m in messages if any(name in m for name in mine)] == []
    expected_params = {
        "/gateway/top-routes": {
            "limit",
            "order_by",
            "method",
            "path",
            "route",
            "project_ids",
            "exact",
        },
        "/gateway/client-analytics": {"limit", "offset", "search", "device_type", "order_by"},
        "/gateway/geographical-stats": {"limit", "order_by", "country_code", "start_time", "exact"},
    }
    for path, names in expected_params.items():
        operation = schema["paths"][path]["get"]
        assert names <= {p["name"] for p in operation["parameters"]}, path
        assert {"200", "400", "403"} <= set(operation["responses"]), path
        assert operation["responses"]["200"]["content"]["application/json"]["examples"], path
    order_by = next(
        p for p in schema["paths"]["/gateway/top-routes"]["get"]["parameters"]
        if p["name"] == "order_by"
    )  # fmt: skip
    assert order_by["schema"]["enum"] == [
        "requests", "errors", "error_rate", "avg_time", "p95_time", "tokens"
    ]  # fmt: skip


def test_repeated_project_ids_parameters_are_combined(superuser_client, routes_data):
    query = f"?start_time={START}&end_time={END}&project_ids={P1}&project_ids={P2}&limit=100"
    body = superuser_client.get(URL + query).json()
    assert body["data"]["summary"]["total_requests"] == sum(
        e["request_count"] for e in expected_routes(routes_data, projects=(P1, P2)).values()
    )


def test_the_routes_shaper_is_pure_and_shares_come_from_the_window_totals():
    from analytics.routes_clients.queries import shape_top_routes

    row = {
        "route": "/v1/files/{id}",
        "method": "GET",
        "request_count": 3,
        "error_count": 1,
        "error_rate": 1 / 3,
        "avg_response_time": 12.5,
        "p95_response_time": 20,
        "p99_response_time": 30,
        "p95_ttft": None,
        "total_tokens": 0,
        "all_requests": 12,
        "all_routes": 4,
    }
    data = shape_top_routes([row])
    assert data["summary"] == {"total_routes": 4, "total_requests": 12}
    assert data["routes"][0]["percent"] == 0.25
    assert data["routes"][0]["p95_ttft"] is None
    assert shape_top_routes([]) == {
        "routes": [],
        "summary": {"total_routes": 0, "total_requests": 0},
    }
