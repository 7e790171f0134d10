"""GET /gateway/geographical-stats against real chDB rows, checked against Python."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from tests.conftest import make_row
from tests.test_top_routes import HOSTILE, exact_quantile

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

URL = "/gateway/geographical-stats"
P1 = uuid.UUID("11111111-1111-4111-8111-111111111111")
P2 = uuid.UUID("22222222-2222-4222-8222-222222222222")
WINDOW = {"start_time": "2025-01-01T00:00:00Z", "end_time": "2025-02-01T00:00:00Z"}

# (country, region, city, latitude, longitude, requests)
PLACES = [
    ("US", "CA", "San Francisco", 37.7749, -122.4194, 20),
    ("US", "CA", "Los Angeles", 34.0522, -118.2437, 10),
    ("US", "NY", "New York", 40.7128, -74.006, 15),
    ("US", "", "", 0.0, 0.0, 3),
    ("DE", "BE", "Berlin", 52.52, 13.405, 12),
    ("FR", "Île-de-France", "Paris", 48.8566, 2.3522, 5),
    ("TW", "", "", 0.0, 0.0, 2),
    ("XK", "", "", 0.0, 0.0, 1),
    ("", "", "", 0.0, 0.0, 7),
]
NAMES = {"US": "United States", "DE": "Germany", "FR": "France", "TW": "Taiwan", "XK": "XK"}


def geo_rows() -> list[dict[str, Any]]:
    rng = random.Random(11)
    rows = []
    for country, region, city, lat, lon, count in PLACES:
        for _ in range(count):
            rows.append(
                make_row(
                    project_id=P1,
                    timestamp=datetime(2025, 1, rng.randrange(1, 31), tzinfo=UTC),
                    country_code=country,
                    region=region,
                    city=city,
                    latitude=lat,
                    longitude=lon,
                    status_code=rng.choice([200, 200, 200, 429, 500]),
                    response_time_ms=rng.randrange(10, 2000),
                    total_tokens=rng.randrange(0, 1000),
                    client_id=rng.choice(["", "key-a", "key-b", "key-c"]),
                )
            )
    rows += [
        make_row(project_id=P2, timestamp=datetime(2025, 1, 5, tzinfo=UTC), country_code="JP")
        for _ in range(30)
    ]
    return rows


def _metrics(group: list[dict[str, Any]], total: int) -> dict[str, Any]:
    times = [r["response_time_ms"] for r in group]
    errors = sum(r["status_code"] >= 400 for r in group)
    return {
        "request_count": len(group),
        "error_count": errors,
        "error_rate": errors / len(group),
        "avg_response_time": sum(times) / len(times),
        "p95_response_time": exact_quantile(times, 0.95),
        "total_tokens": sum(r["total_tokens"] for r in group),
        "unique_users": len({r["client_id"] for r in group if r["client_id"]}),
        "percent": len(group) / total,
    }


def expected(rows: list[dict[str, Any]], projects=(P1,)) -> dict[str, dict[tuple, dict]]:
    """Per-level metrics computed in Python, keyed by the group's (country, region, city)."""
    mine = [r for r in rows if r["project_id"] in projects]
    levels: dict[str, dict[tuple, list]] = {
        "countries": defaultdict(list),
        "regions": defaultdict(list),
        "cities": defaultdict(list),
    }
    for row in mine:
        place = (row["country_code"], row["region"], row["city"])
        levels["countries"][place[:1]].append(row)
        levels["regions"][place[:2]].append(row)
        levels["cities"][place].append(row)
    return {
        name: {key: _metrics(group, len(mine)) for key, group in groups.items()}
        for name, groups in levels.items()
    }


def _key(entry: dict[str, Any], level: str) -> tuple:
    def raw(value):
        return "" if value in (None, "Unknown") else value

    key = (entry["country_code"] or "",)
    if level in ("regions", "cities"):
        key += (raw(entry["region"]),)
    if level == "cities":
        key += (raw(entry["city"]),)
    return key


def _assert_metrics(actual: dict[str, Any], want: dict[str, Any]) -> None:
    for name, value in want.items():
        if isinstance(value, float):
            assert actual[name] == pytest.approx(value, rel=1e-9), name
        else:
            assert actual[name] == value, name


@pytest.fixture
def geo_data(clickhouse):
    rows = geo_rows()
    clickhouse(rows)
    return rows


def _get(client, **params):
    # These tests hold the raw path to Python (exact percentiles and distinct counts);
    # tests/test_rollups_geo_routes.py holds the geo_15m rollup path to the raw path.
    params.setdefault("exact", "true")
    response = client.get(URL, {**WINDOW, **params})
    return response, response.json()


def test_every_list_matches_python_over_the_same_rows(superuser_client, geo_data):
    response, body = _get(superuser_client, project_ids=str(P1), limit=1000)
    assert response.status_code == 200, body
    want = expected(geo_data)
    for level in ("countries", "regions", "cities"):
        entries = body["data"][level]
        assert len(entries) == len(want[level]), level
        for entry in entries:
            _assert_metrics(entry, want[level][_key(entry, level)])


def test_country_names_come_from_iso_3166(superuser_client, geo_data):
    _, body = _get(superuser_client, project_ids=str(P1))
    names = {c["country_code"]: c["country_name"] for c in body["data"]["countries"]}
    assert names == {**NAMES, None: "Unknown"}


def test_rows_without_geo_form_one_unknown_entry_per_list(superuser_client, geo_data):
    _, body = _get(superuser_client, project_ids=str(P1))
    data = body["data"]
    unknown = [c for c in data["countries"] if c["country_code"] is None]
    assert [(u["country_name"], u["request_count"]) for u in unknown] == [("Unknown", 7)]
    unknown_regions = [r for r in data["regions"] if r["country_code"] is None]
    assert [(r["region"], r["request_count"]) for r in unknown_regions] == [("Unknown", 7)]
    us_unknown_city = [
        c for c in data["cities"] if c["country_code"] == "US" and c["city"] == "Unknown"
    ]
    assert [(c["region"], c["request_count"], c["latitude"]) for c in us_unknown_city] == [
        ("Unknown", 3, None)
    ]
    total = sum(c["request_count"] for c in data["countries"])
    assert total == data["summary"]["total_requests"] == sum(p[-1] for p in PLACES)
    assert data["summary"]["unknown_requests"] == 7


def test_city_entries_carry_region_and_coordinates(superuser_client, geo_data):
    _, body = _get(superuser_client, project_ids=str(P1))
    sf = next(c for c in body["data"]["cities"] if c["city"] == "San Francisco")
    assert (sf["country_code"], sf["region"]) == ("US", "CA")
    assert sf["latitude"] == pytest.approx(37.7749, abs=1e-4)
    assert sf["longitude"] == pytest.approx(-122.4194, abs=1e-4)
    ca = next(r for r in body["data"]["regions"] if r["region"] == "CA")
    assert ca["region_name"] == "California"
    idf = next(r for r in body["data"]["regions"] if r["country_code"] == "FR")
    assert idf["region"] == idf["region_name"] == "Île-de-France"


def test_percent_of_each_list_sums_to_one(superuser_client, geo_data):
    _, body = _get(superuser_client, project_ids=str(P1))
    for level in ("countries", "regions", "cities"):
        assert sum(e["percent"] for e in body["data"][level]) == pytest.approx(1.0), level


def test_summary_counts_all_rows_not_only_the_returned_top_n(superuser_client, geo_data):
    _, top1 = _get(superuser_client, project_ids=str(P1), limit=1)
    data = top1["data"]
    assert [len(data[level]) for level in ("countries", "regions", "cities")] == [1, 1, 1]
    assert data["summary"] == {
        "total_countries": 5,  # US, DE, FR, TW, XK; Unknown is not a country
        "total_regions": 4,  # US-CA, US-NY, DE-BE, FR-Île-de-France
        "total_cities": 5,
        "total_requests": 75,
        "unknown_requests": 7,
    }
    assert data["countries"][0]["country_code"] == "US"
    assert data["countries"][0]["percent"] == pytest.approx(48 / 75)


@pytest.mark.parametrize(
    ("order_by", "key"),
    [("requests", "request_count"), ("errors", "error_count"), ("avg_time", "avg_response_time")],
)
def test_order_by_ranks_each_list_highest_first(superuser_client, geo_data, order_by, key):
    _, body = _get(superuser_client, project_ids=str(P1), order_by=order_by)
    want = expected(geo_data)
    for level in ("countries", "regions", "cities"):
        ranked = sorted(want[level].items(), key=lambda kv: (-kv[1][key], kv[0]))
        assert [_key(e, level) for e in body["data"][level]] == [k for k, _ in ranked], level


def test_country_code_drills_into_one_countrys_regions_and_cities(superuser_client, geo_data):
    _, body = _get(superuser_client, project_ids=str(P1), country_code="us")
    data = body["data"]
    assert [c["country_code"] for c in data["countries"]] == ["US"]
    assert data["countries"][0]["percent"] == 1.0
    assert {r["region"] for r in data["regions"]} == {"CA", "NY", "Unknown"}
    assert {c["city"] for c in data["cities"]} == {
        "San Francisco",
        "Los Angeles",
        "New York",
        "Unknown",
    }
    assert data["summary"]["total_requests"] == 48
    assert data["summary"]["total_countries"] == 1
    assert data["summary"]["unknown_requests"] == 0


def test_defaults_cover_the_last_seven_days(superuser_client, clickhouse):
    now = timezone.now()
    clickhouse(
        [make_row(timestamp=now - timedelta(hours=3), country_code="DE")] * 1
        + [make_row(timestamp=now - timedelta(days=9), country_code="US")]
    )
    response = superuser_client.get(URL)
    assert response.status_code == 200, response.json()
    countries = response.json()["data"]["countries"]
    assert [(c["country_code"], c["request_count"]) for c in countries] == [("DE", 1)]


def test_no_rows_gives_empty_lists_and_zero_summary(superuser_client, clickhouse):
    _, body = _get(superuser_client)
    assert body["data"] == {
        "countries": [],
        "regions": [],
        "cities": [],
        "summary": {
            "total_countries": 0,
            "total_regions": 0,
            "total_cities": 0,
            "total_requests": 0,
            "unknown_requests": 0,
        },
        "meta": {"source": "raw", "approximate": {}},
    }


def test_restricted_client_never_sees_another_projects_rows(api_client_factory, geo_data):
    _, body = _get(api_client_factory([P2]))
    assert [(c["country_code"], c["request_count"]) for c in body["data"]["countries"]] == [
        ("JP", 30)
    ]
    assert body["data"]["summary"]["total_requests"] == 30


def test_restricted_client_asking_for_a_foreign_project_gets_403(api_client_factory, geo_data):
    response, body = _get(api_client_factory([P2]), project_ids=str(P1))
    assert response.status_code == 403
    assert str(P1) in body["error"]["message"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"order_by": "tokens"}, "order_by"),
        ({"country_code": "USA"}, "country_code"),
        ({"country_code": "U1"}, "country_code"),
        ({"project_ids": "123"}, "project_ids"),
        ({"endpoint_ids": "zzz"}, "endpoint_ids"),
        ({"start_time": "2025-02-01T00:00:00Z", "end_time": "2025-01-01T00:00:00Z"}, "end_time"),
    ],
)
def test_invalid_parameters_are_400_naming_the_field(superuser_client, clickhouse, params, field):
    response, body = _get(superuser_client, **params)
    assert response.status_code == 400, body
    assert body["error"]["code"] == "invalid_request"
    assert field in body["error"]["details"]


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
        "country_code",
    ],
)
def test_hostile_input_is_a_400_or_a_correct_answer_never_a_500(superuser_client, geo_data, param):
    for value in HOSTILE:
        response = superuser_client.get(URL, {**WINDOW, "project_ids": str(P1), param: value})
        assert response.status_code in (200, 400), (value[:40], response.content[:300])
        assert response.json()["success"] is (response.status_code == 200)


def test_the_geo_shaper_is_pure_and_names_unknown_places():
    from geo.queries import LEVEL_CITY, LEVEL_COUNTRY, LEVEL_REGION, LEVEL_TOTAL, shape_geo_stats

    def row(level, country, region, city, requests, **extra):
        return {
            "geo_level": level,
            "country_code": country,
            "region": region,
            "city": city,
            "avg_latitude": extra.get("lat"),
            "avg_longitude": extra.get("lon"),
            "request_count": requests,
            "error_count": 1,
            "error_rate": 1 / requests,
            "avg_response_time": 10.0,
            "p95_response_time": 20,
            "total_tokens": 5,
            "unique_users": 2,
            "known_groups": extra.get("known", 1),
            "unknown_requests": extra.get("unknown", 0),
        }

    data = shape_geo_stats(
        [
            row(LEVEL_TOTAL, "", "", "", 10),
            row(LEVEL_COUNTRY, "DE", "", "", 8, unknown=2),
            row(LEVEL_COUNTRY, "", "", "", 2, unknown=2),
            row(LEVEL_REGION, "DE", "BE", "", 8),
            row(LEVEL_CITY, "DE", "BE", "Berlin", 8, lat=52.520008, lon=13.404954),
        ]
    )
    assert [c["country_code"] for c in data["countries"]] == ["DE", None]
    assert data["countries"][0]["percent"] == 0.8
    assert data["cities"][0]["latitude"] == 52.52
    assert data["summary"] == {
        "total_countries": 1,
        "total_regions": 1,
        "total_cities": 1,
        "total_requests": 10,
        "unknown_requests": 2,
    }


def test_the_answer_says_which_storage_it_read(superuser_client, geo_data):
    """exact=true reads raw rows, exactly; by default the geo_15m rollup answers, and says
    which values came from a sketch (tests/test_rollups_geo_routes.py compares them)."""
    response, body = _get(superuser_client, project_ids=str(P1))
    assert response.status_code == 200, body
    assert body["data"]["meta"] == {"source": "raw", "approximate": {}}
    response, body = _get(superuser_client, project_ids=str(P1), exact="false")
    assert response.status_code == 200, body
    assert body["data"]["meta"]["source"] == "geo_15m"
    assert set(body["data"]["meta"]["approximate"]) == {
        "response_time_percentiles",
        "unique_users_sketch",
    }
