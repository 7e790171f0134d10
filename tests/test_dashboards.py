"""Default dashboard views: warmed per active project on real chDB and Redis, then read as a
cache hit by a caller allowed on the project, with numbers counted from the rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from analytics import cache as response_cache
from analytics import dashboards
from analytics.saved_queries import validate_params
from tests import analytics_oracle as oracle
from tests.conftest import make_row

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"], transaction=True)

P1, P2, P3 = (str(p) for p in oracle.PROJECTS[:3])
NOW = datetime(2025, 3, 10, 12, 34, 56, tzinfo=UTC)  # windows end at 12:30 (300 s steps)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


ROWS = [
    *(make_row(project_id=P1, timestamp=at("2025-03-10T06:00")) for _ in range(3)),
    make_row(project_id=P1, timestamp=at("2025-03-07T06:00"), status_code=500),
    make_row(project_id=P1, timestamp=at("2025-03-10T12:32")),  # after the window's end
    make_row(project_id=P2, timestamp=at("2025-03-10T07:00")),
    make_row(project_id=P3, timestamp=at("2025-03-05T00:00")),  # not active in the last 24 h
]


def in_window(project: str, start: str, end: str) -> int:
    """Rows of one project in [start, end): the independent count."""
    return sum(
        1 for r in ROWS if str(r["project_id"]) == project and at(start) <= r["timestamp"] < at(end)
    )


@pytest.fixture
def rows(clickhouse: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    clickhouse(ROWS)
    monkeypatch.setattr(response_cache, "clock", lambda: NOW.timestamp())


def test_every_view_is_valid_for_its_endpoint():
    for name in dashboards.VIEWS:
        params = dashboards.view_query(name, oracle.PROJECTS[0]).resolved_params(NOW.timestamp())
        assert params["end_time"] == "2025-03-10T12:30:00+00:00"
        assert validate_params(dashboards.VIEWS[name].endpoint, params) == {}, name


def test_views_are_listed(superuser_client):
    response = superuser_client.get("/gateway/dashboards")
    assert response.status_code == 200
    views = {v["name"]: v for v in response.json()["data"]["views"]}
    assert set(views) == set(dashboards.VIEWS)
    assert views["overview"]["endpoint"] == "analytics"
    assert views["overview"]["method"] == "POST"
    assert views["geography"]["time_window"] == "last_7d"


def test_active_projects_are_those_with_recent_traffic(rows):
    assert dashboards.active_projects(NOW.timestamp()) == sorted(
        [oracle.PROJECTS[0], oracle.PROJECTS[1]], key=str
    )


def test_warmed_views_are_hits_for_an_allowed_reader_with_the_rows_numbers(
    rows, api_client_factory
):
    from analytics.tasks import warm_dashboards

    assert warm_dashboards.apply().get() == 2 * len(dashboards.VIEWS)
    reader = api_client_factory([P1])

    overview = reader.get(f"/gateway/dashboards/overview?project_id={P1}")
    assert overview.status_code == 200, overview.content
    assert overview["X-Cache"] == "HIT"
    data = overview.json()["data"]
    assert data["query"]["end_time"].startswith("2025-03-10T12:30:00")
    assert data["summary"]["total_requests"] == in_window(
        P1, "2025-03-09T12:30", "2025-03-10T12:30"
    )
    assert data["summary"]["total_requests"] == 3

    geography = reader.get(f"/gateway/dashboards/geography?project_id={P1}")
    assert geography["X-Cache"] == "HIT"
    total = geography.json()["data"]["summary"]["total_requests"]
    assert total == in_window(P1, "2025-03-03T12:30", "2025-03-10T12:30") == 4

    routes = reader.get(f"/gateway/dashboards/top-routes?project_id={P1}")
    assert routes["X-Cache"] == "HIT"
    assert sum(r["request_count"] for r in routes.json()["data"]["routes"]) == 4

    blocking = reader.get(f"/gateway/dashboards/blocking?project_id={P1}")
    assert blocking["X-Cache"] == "HIT"
    assert blocking.json()["data"]["summary"]["total_requests"] == 3

    # The same question asked of the endpoint directly is the same entry.
    direct = reader.post(
        "/gateway/analytics",
        dashboards.view_query("overview", oracle.PROJECTS[0]).resolved_params(NOW.timestamp()),
        format="json",
    )
    assert direct["X-Cache"] == "HIT"
    assert direct.json()["data"]["summary"] == data["summary"]


def test_inactive_projects_are_not_warmed(rows, superuser_client):
    dashboards.warm_dashboards()
    response = superuser_client.get(f"/gateway/dashboards/geography?project_id={P3}")
    assert response.status_code == 200
    assert response["X-Cache"] == "MISS"
    assert response.json()["data"]["summary"]["total_requests"] == 1


def test_each_view_is_warmed_once_per_window(rows, monkeypatch):
    assert len(dashboards.warm_dashboards()) == 2 * len(dashboards.VIEWS)
    assert dashboards.warm_dashboards() == []
    later = NOW.timestamp() + 300
    monkeypatch.setattr(response_cache, "clock", lambda: later)
    assert len(dashboards.warm_dashboards()) == 2 * len(dashboards.VIEWS)


def test_a_view_being_warmed_elsewhere_is_skipped(rows):
    from django.core.cache import cache

    key = dashboards._marker_key("overview", oracle.PROJECTS[0])
    assert cache.add(f"lock:{key}", "1", timeout=60)
    warmed = dashboards.warm_dashboards()
    assert (oracle.PROJECTS[0], "overview") not in warmed
    assert len(warmed) == 2 * len(dashboards.VIEWS) - 1


def test_warming_off_when_the_interval_is_zero(rows, settings):
    settings.DASHBOARD_REFRESH_INTERVAL = 0
    assert dashboards.warm_dashboards() == []


def test_access_control_and_validation(rows, api_client_factory, anonymous_client):
    reader = api_client_factory([P1])
    denied = reader.get(f"/gateway/dashboards/overview?project_id={P2}")
    assert denied.status_code == 403
    assert P2 in denied.json()["error"]["message"]

    missing = reader.get("/gateway/dashboards/overview")
    assert missing.status_code == 400
    assert "project_id" in missing.json()["error"]["details"]

    bad = reader.get("/gateway/dashboards/overview?project_id=1' OR 1=1 --")
    assert bad.status_code == 400
    assert "project_id" in bad.json()["error"]["details"]

    unknown = reader.get(f"/gateway/dashboards/nope?project_id={P1}")
    assert unknown.status_code == 404
    assert "overview" in unknown.json()["error"]["message"]

    assert anonymous_client.get(f"/gateway/dashboards/overview?project_id={P1}").status_code == 401


def test_a_dashboard_read_counts_once_against_the_rate_limit(rows, settings, api_client_factory):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"client": "2/min", "anon": "2/min"},
    }
    reader = api_client_factory([P1])
    url = f"/gateway/dashboards/top-routes?project_id={P1}"
    assert [reader.get(url).status_code for _ in range(3)] == [200, 200, 429]


def test_warming_is_not_throttled(rows, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"client": "1/min", "anon": "1/min"},
    }
    assert len(dashboards.warm_dashboards()) == 2 * len(dashboards.VIEWS)


def test_a_read_passes_the_endpoints_answer_and_cache_headers_through(rows, superuser_client):
    miss = superuser_client.get(f"/gateway/dashboards/geography?project_id={P1}")
    hit = superuser_client.get(f"/gateway/dashboards/geography?project_id={P1}")
    assert (miss["X-Cache"], hit["X-Cache"]) == ("MISS", "HIT")
    assert "Age" in hit
    assert "Age" not in miss
    assert hit["Content-Type"] == "application/json"
    assert hit.content == miss.content
    assert hit.json()["data"]["countries"][0]["request_count"] == 4
