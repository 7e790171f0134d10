"""The geo_15m and routes_15m rollups (issue 11) on real chDB: GET /gateway/geographical-stats
and GET /gateway/top-routes answered from a rollup equal the same request forced to raw
rows (``exact=true``): counts, sums and means exactly, percentiles within 210 ms and
distinct users within 1 % (the registry's SKETCH_BOUNDS); ``data.meta`` says which
storage answered; rows inserted late for an old bucket are counted.

The raw path itself is held to independent Python computations in tests/test_geo_stats.py
and tests/test_top_routes.py.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analytics.query.planner import plan
from analytics.query.registry import SKETCH_BOUNDS
from analytics.query.rollups import GEO, ROUTES_ROLLUP
from analytics.query.scope import ProjectScope
from analytics.query.tree import Window
from analytics.routes_clients.queries import top_routes_query
from geo.queries import geo_stats_query
from tests.conftest import clickhouse_client, insert_rows, make_row

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

BASE = datetime(2025, 3, 3, 0, 0, tzinfo=UTC)
# Unaligned at both ends: 10:07 on the first day to 14:52 three days later.
START = BASE + timedelta(hours=10, minutes=7)
END = BASE + timedelta(days=3, hours=14, minutes=52)
WINDOW = {"start_time": START.isoformat(), "end_time": END.isoformat()}
P1 = uuid.UUID("11111111-1111-4111-8111-111111111111")
P2 = uuid.UUID("22222222-2222-4222-8222-222222222222")
MODEL = uuid.UUID("33333333-3333-4333-8333-333333333333")
QUANTILE_ERROR_MS = 210  # registry: SKETCH_BOUNDS (quantilesTiming)
DISTINCT_ERROR = 0.01  # registry: SKETCH_BOUNDS (uniqCombined64)

PLACES = [
    ("US", "CA", "San Francisco", 37.7749, -122.4194),
    ("US", "CA", "Los Angeles", 34.0522, -118.2437),
    ("US", "NY", "New York", 40.7128, -74.006),
    ("US", "", "", 0.0, 0.0),
    ("DE", "BE", "Berlin", 52.52, 13.405),
    ("DE", "BY", "Munich", 48.1351, 11.582),
    ("IN", "KA", "Bengaluru", 12.9716, 77.5946),
    ("", "", "", 0.0, 0.0),
]
PATHS = [
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/embeddings"),
    ("GET", "/v1/models"),
    ("GET", "/v1/files/file-abc123"),
    ("GET", "/v1/files/file-zz9876"),
    ("DELETE", "/v1/files/file-abc123"),
    ("GET", "/v1/models/42"),
    ("GET", "/v1/models/7"),
]


def traffic(seed: int, count: int, start: datetime, minutes: int) -> list[dict[str, Any]]:
    """Random-ish rows over ``minutes`` from ``start`` (seeded: the same rows each run)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        country, region, city, lat, lon = rng.choice(PLACES)
        method, path = rng.choice(PATHS)
        # DELETE is never streamed: its route has no first-token time (p95_ttft null).
        streaming = method != "DELETE" and rng.random() < 0.5
        rows.append(
            make_row(
                project_id=rng.choice((P1, P1, P2)),
                model_id=rng.choice((MODEL, uuid.UUID(int=0))),
                timestamp=start + timedelta(seconds=rng.randrange(minutes * 60)),
                country_code=country,
                region=region,
                city=city,
                latitude=lat,
                longitude=lon,
                method=method,
                path=path,
                status_code=rng.choice((200, 200, 200, 201, 404, 429, 500)),
                response_time_ms=rng.choice((rng.randrange(0, 2_000), rng.randrange(0, 40_000))),
                is_streaming=streaming,
                ttft_ms=rng.randrange(1, 3_000) if streaming else 0,
                total_tokens=rng.randrange(0, 5_000),
                client_id=rng.choice(("", *(f"key-{i}" for i in range(30)))),
            )
        )
    return rows


@pytest.fixture
def rows_with_late_arrivals(clickhouse: Any) -> list[dict[str, Any]]:
    """Rows over four days, then, in a second insert, rows arriving late for old buckets
    (the view adds them as new rollup parts; -Merge counts them)."""
    first = traffic(1, 1500, BASE, 4 * 24 * 60)
    clickhouse(first)
    late = traffic(2, 300, BASE + timedelta(hours=11), 2 * 24 * 60)
    insert_rows(late)
    return first + late


def get(client: Any, url: str, **params: Any) -> dict[str, Any]:
    response = client.get(url, {**WINDOW, **params})
    assert response.status_code == 200, response.json()
    return response.json()["data"]


def close(name: str, rolled: Any, raw: Any) -> None:
    """One value of a rollup answer against the raw answer."""
    if rolled is None or raw is None:
        assert rolled == raw, name
    elif name in ("p95_response_time", "p99_response_time", "p95_ttft"):
        assert abs(rolled - raw) <= QUANTILE_ERROR_MS, name
    elif name == "unique_users":
        assert abs(rolled - raw) <= DISTINCT_ERROR * raw, name
    elif name in ("latitude", "longitude"):
        assert rolled == pytest.approx(raw, abs=1e-4), name  # rounded to 4 places
    elif isinstance(raw, float):
        assert rolled == pytest.approx(raw, rel=1e-9, abs=1e-12), name
    else:
        assert rolled == raw, name


def assert_same_entries(rolled: list[dict], raw: list[dict]) -> None:
    assert len(rolled) == len(raw)
    for a, b in zip(rolled, raw, strict=True):
        assert a.keys() == b.keys()
        for name, value in b.items():
            close(name, a[name], value)


# --- geographical-stats ---------------------------------------------------------------------

GEO_URL = "/gateway/geographical-stats"
GEO_SKETCHED = {m: SKETCH_BOUNDS[m] for m in ("response_time_percentiles", "unique_users_sketch")}


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 1000},
        {"limit": 2, "order_by": "errors"},
        {"limit": 1000, "order_by": "avg_time", "project_ids": str(P1)},
        {"limit": 1000, "country_code": "us"},
    ],
)
def test_geo_from_the_rollup_equals_raw(
    superuser_client: Any, rows_with_late_arrivals: list, params: dict
) -> None:
    rolled = get(superuser_client, GEO_URL, **params)
    raw = get(superuser_client, GEO_URL, **params, exact="true")
    assert rolled["meta"] == {"source": GEO.name, "approximate": GEO_SKETCHED}
    assert raw["meta"] == {"source": "raw", "approximate": {}}
    for level in ("countries", "regions", "cities"):
        assert_same_entries(rolled[level], raw[level])
    assert rolled["summary"] == raw["summary"]
    in_range = [
        r
        for r in rows_with_late_arrivals
        if START <= r["timestamp"] < END
        and ("project_ids" not in params or r["project_id"] == P1)
        and ("country_code" not in params or r["country_code"] == "US")
    ]
    assert rolled["summary"]["total_requests"] == len(in_range)  # late rows included


def test_geo_with_model_ids_is_not_covered_and_reads_raw_rows(
    superuser_client: Any, rows_with_late_arrivals: list
) -> None:
    rolled = get(superuser_client, GEO_URL, model_ids=str(MODEL))
    assert rolled["meta"] == {"source": "raw", "approximate": {}}
    expected = [
        r
        for r in rows_with_late_arrivals
        if START <= r["timestamp"] < END and r["model_id"] == MODEL
    ]
    assert rolled["summary"]["total_requests"] == len(expected)
    tree = geo_stats_query(window(model_ids=(MODEL,)), limit=5, order_by="requests")
    chosen = plan(tree)
    assert dict(chosen.refused)[GEO.name] == "filter model_id not covered"
    assert chosen.query is tree.fallback


# --- top-routes -------------------------------------------------------------------------------

ROUTES_URL = "/gateway/top-routes"
ROUTES_SKETCHED = {m: SKETCH_BOUNDS[m] for m in ("response_time_percentiles", "ttft_percentiles")}


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 100},
        {"limit": 100, "group_ids": "false"},
        {"limit": 3, "order_by": "errors"},
        {"limit": 100, "method": "get"},
        {"limit": 100, "route": "/v1/files/{id}"},
        {"limit": 100, "path": "/v1/files/file-abc123", "method": "DELETE"},
        {"limit": 100, "order_by": "avg_time", "project_ids": str(P2)},
    ],
)
def test_top_routes_from_the_rollup_equal_raw(
    superuser_client: Any, rows_with_late_arrivals: list, params: dict
) -> None:
    rolled = get(superuser_client, ROUTES_URL, **params)
    raw = get(superuser_client, ROUTES_URL, **params, exact="true")
    assert rolled["meta"] == {"source": ROUTES_ROLLUP.name, "approximate": ROUTES_SKETCHED}
    assert raw["meta"] == {"source": "raw", "approximate": {}}
    assert raw["routes"], "the request matches rows"
    if "path" in params:
        assert [r["p95_ttft"] for r in rolled["routes"]] == [None]
    assert_same_entries(rolled["routes"], raw["routes"])
    assert rolled["summary"] == raw["summary"]


def test_templated_routes_merge_the_percentiles_of_their_paths(
    superuser_client: Any, rows_with_late_arrivals: list
) -> None:
    """/v1/files/file-abc123 and /v1/files/file-zz9876 are one route: its percentiles come
    from both paths' states, not from either one."""
    rolled = get(superuser_client, ROUTES_URL, limit=100, method="GET")
    files = next(r for r in rolled["routes"] if r["path"] == "/v1/files/{id}")
    times = sorted(
        r["response_time_ms"]
        for r in rows_with_late_arrivals
        if START <= r["timestamp"] < END
        and r["method"] == "GET"
        and r["path"].startswith("/v1/files/")
    )
    assert files["request_count"] == len(times)
    exact = times[int(0.95 * len(times))]
    assert abs(files["p95_response_time"] - exact) <= QUANTILE_ERROR_MS


def test_top_routes_with_endpoint_ids_or_exact_read_raw_rows(
    superuser_client: Any, rows_with_late_arrivals: list
) -> None:
    uncovered = get(superuser_client, ROUTES_URL, endpoint_ids=str(uuid.UUID(int=0)))
    assert uncovered["meta"] == {"source": "raw", "approximate": {}}
    assert uncovered["summary"]["total_requests"] == sum(
        START <= r["timestamp"] < END for r in rows_with_late_arrivals
    )
    tree = top_routes_query(window(endpoint_ids=(MODEL,)), limit=5, order_by="requests")
    assert dict(plan(tree).refused)[ROUTES_ROLLUP.name] == "filter endpoint_id not covered"
    exact = top_routes_query(window(), limit=5, order_by="requests", exact=True)
    chosen = plan(exact)
    assert dict(chosen.refused)[ROUTES_ROLLUP.name] == "exact requested"
    assert chosen.query is exact.fallback


@pytest.mark.parametrize("url", [GEO_URL, ROUTES_URL])
@pytest.mark.parametrize("value", ["1", "yes", "", "True1"])
def test_exact_is_a_strict_boolean(superuser_client: Any, clickhouse: Any, url: str, value: str):
    response = superuser_client.get(url, {**WINDOW, "exact": value})
    assert response.status_code == 400
    assert "exact" in response.json()["error"]["details"]


def test_exact_and_rollup_answers_are_cached_apart(
    superuser_client: Any, rows_with_late_arrivals: list
) -> None:
    for url, name in ((GEO_URL, GEO.name), (ROUTES_URL, ROUTES_ROLLUP.name)):
        first = get(superuser_client, url)
        exact = get(superuser_client, url, exact="true")
        again = get(superuser_client, url)
        assert (first["meta"]["source"], exact["meta"]["source"]) == (name, "raw")
        assert again["meta"]["source"] == name


# --- the rollup tables ------------------------------------------------------------------------


def window(**ids: Any) -> Window:
    return Window(scope=ProjectScope.all_projects(), start=START, end=END, **ids)


@pytest.mark.parametrize("rollup", [GEO, ROUTES_ROLLUP], ids=lambda r: r.name)
def test_atom_types_match_the_rollup_columns(clickhouse: Any, rollup: Any) -> None:
    """Each state expression returns exactly its rollup column's type, so the raw edges
    and the rollup rows UNION ALL without a cast."""
    client = clickhouse_client()
    exprs = ", ".join(f"toTypeName({a.state})" for a in rollup.atoms)
    (returned,) = client.query(f"SELECT {exprs} FROM gateway_analytics").result_rows  # noqa: S608
    declared = dict(
        client.query(
            "SELECT name, type FROM system.columns WHERE database = currentDatabase() "
            "AND table = {t:String}",
            parameters={"t": rollup.table},
        ).result_rows
    )
    expected = {a.name: a.type for a in rollup.atoms}
    assert dict(zip(expected, returned, strict=True)) == expected
    assert {a.name: declared[a.column] for a in rollup.atoms} == expected


def test_the_views_feed_both_rollups(clickhouse: Any) -> None:
    clickhouse(traffic(3, 400, BASE, 24 * 60))
    client = clickhouse_client()
    for rollup in (GEO, ROUTES_ROLLUP):
        (rolled,) = client.query(f"SELECT countMerge(s_n) FROM {rollup.table}").result_rows[0]  # noqa: S608
        assert rolled == 400, rollup.name


# --- POST /gateway/analytics: the planner may choose these rollups too ---------------------


@pytest.mark.parametrize(
    ("body", "source"),
    [
        (
            {
                "group_by": ["country_code"],
                "metrics": ["total_requests", "error_rate", "p95_response_time", "unique_users"],
            },
            GEO.name,
        ),
        (
            {
                "group_by": ["region"],
                "metrics": ["avg_response_time", "total_tokens"],
                "filters": {"country_code": "US"},
            },
            GEO.name,
        ),
        ({"group_by": ["method"], "metrics": ["total_requests", "total_tokens"]}, "routes_15m"),
        (
            {"metrics": ["error_count"], "filters": {"path": "/v1/files/file-abc123"}},
            "routes_15m",
        ),
    ],
)
def test_analytics_grouped_by_place_or_path_reads_these_rollups_and_equals_raw(
    superuser_client: Any, rows_with_late_arrivals: list, body: dict, source: str
) -> None:
    """A series request whose metrics, groups and filters geo_15m or routes_15m covers
    (and series_15m does not) is answered from it, in a +5:30 zone over an unaligned
    range, and equals the same request forced to raw rows."""
    request = {**WINDOW, "time_bucket": "1h", "timezone": "Asia/Kolkata", **body}

    def post(**extra: Any) -> dict[str, Any]:
        response = superuser_client.post("/gateway/analytics", {**request, **extra}, format="json")
        assert response.status_code == 200, response.json()
        return response.json()["data"]

    rolled, raw = post(), post(exact=True)
    assert rolled["meta"]["source"] == source
    assert raw["meta"]["source"] == "raw"
    assert len(rolled["time_series"]) == len(raw["time_series"]) > 0
    for a, b in zip(rolled["time_series"], raw["time_series"], strict=True):
        assert (a["timestamp"], a["groups"]) == (b["timestamp"], b["groups"])
        for name, value in b["metrics"].items():
            close(name, a["metrics"][name], value)
    for name, value in raw["summary"].items():
        close(name, rolled["summary"][name], value)
