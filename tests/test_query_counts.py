"""Query counts: how many ClickHouse queries one request issues on each data endpoint
(counted by a pass-through spy on ``analytics.query.runner.run``, which runs every query
for real), that a cache hit issues none, and that the Postgres queries of the list
endpoints do not grow with their rows (no N+1).

A change in these numbers is a change in cost per request: update the table here with
the reason, in review.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analytics import cache as response_cache
from analytics.access.models import ApiClient
from analytics.saved_queries import SavedQuery
from blocking.models import BlockingRule
from tests.conftest import make_row
from tests.security.helpers import QuerySpy, module_rows, uid

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

P1 = uid("counts-1")
START = datetime(2025, 4, 7, tzinfo=UTC)
END = START + timedelta(days=1)
WINDOW = {"start_time": "2025-04-07T00:00:00Z", "end_time": "2025-04-08T00:00:00Z"}
NOW = END + timedelta(seconds=30)  # dashboards' relative windows end at END

ROWS = [
    make_row(
        project_id=P1,
        timestamp=START + timedelta(hours=i % 24, minutes=i),
        client_id=f"client-{i % 4}",
        client_ip=f"10.0.0.{i % 5}",
        country_code=("US", "DE")[i % 2],
        model_name=f"model-{i % 3}",
        path=f"/v1/files/file-{i}" if i % 2 else "/v1/chat/completions",
        # Half the rows have no stored device fields: the filter parses their agents.
        user_agent="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
        device_type="" if i % 2 else "desktop",
        browser="" if i % 2 else "Chrome",
        os="" if i % 2 else "Linux",
        status_code=(200, 404, 500)[i % 3],
        is_blocked=i % 4 == 0,
        block_reason="ip" if i % 4 == 0 else "",
    )
    for i in range(40)
]


_traffic = module_rows(ROWS)


@pytest.fixture(autouse=True)
def _clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(response_cache, "clock", lambda: NOW.timestamp())


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> QuerySpy:
    return QuerySpy().install(monkeypatch)


@pytest.fixture
def client(api_client_factory: Callable[..., Any]) -> Any:
    return api_client_factory([P1])


def analytics(client: Any, **body: Any) -> Any:
    return client.post("/gateway/analytics", {**WINDOW, **body}, format="json")


def get(client: Any, endpoint: str, **params: Any) -> Any:
    return client.get(f"/gateway/{endpoint}", {**WINDOW, **params})


# --- one request, how many ClickHouse queries ------------------------------------------

TOP = {"group_by": ["model_name"], "top_n": 2}

ANALYTICS_COUNTS: dict[str, tuple[dict[str, Any], int]] = {
    # main (series + groups + summary in one GROUPING SETS query) + bucket list
    "plain": ({}, 2),
    "grouped": ({"group_by": ["model_name", "country_code"]}, 2),
    "fill-gaps-off": ({"fill_gaps": False}, 1),
    # + the ranking query the main query needs first
    "top-n": (TOP, 3),
    "top-n-with-other": ({**TOP, "include_other": True}, 3),
    "top-n-fill-gaps-off": ({**TOP, "fill_gaps": False}, 2),
    # + the previous period's summary
    "compare-previous": ({"compare_previous": True}, 3),
    "compare-previous-fill-gaps-off": ({"compare_previous": True, "fill_gaps": False}, 2),
    "top-n-compare-previous": ({**TOP, "compare_previous": True}, 4),
    "filters-do-not-add-queries": (
        {"filters": {"or": [{"status_code": 500}, {"path": {"op": "contains", "value": "x"}}]}},
        2,
    ),
}


@pytest.mark.parametrize("case", list(ANALYTICS_COUNTS))
def test_analytics_queries_per_request(client, spy, case):
    body, expected = ANALYTICS_COUNTS[case]
    response = analytics(client, **body)
    assert response.status_code == 200, response.content[:300]
    assert spy.count == expected, spy.sql


GET_COUNTS: dict[str, tuple[str, dict[str, Any], int]] = {
    # one GROUPING SETS query answers countries, regions, cities and the summary
    "geo": ("geographical-stats", {}, 1),
    "geo-one-country": ("geographical-stats", {"country_code": "DE", "limit": 3}, 1),
    # one two-stage query with window totals
    "top-routes": ("top-routes", {}, 1),
    "top-routes-filtered": ("top-routes", {"method": "POST", "route": "/v1/files/{id}"}, 1),
    "top-routes-raw-paths": ("top-routes", {"group_ids": "false", "order_by": "p95_time"}, 1),
    # one page query with window totals...
    "clients": ("client-analytics", {}, 1),
    "clients-search": ("client-analytics", {"search": "client-1", "order_by": "cost"}, 1),
    # ...plus the distinct user agents to parse, once for all device/browser/os filters
    "clients-device": ("client-analytics", {"device_type": "desktop"}, 2),
    "clients-browser-and-os": ("client-analytics", {"browser": "chrome", "os": "linux"}, 2),
    # ...plus the totals when the page is empty (an offset past the end)
    "clients-past-the-end": ("client-analytics", {"offset": 100}, 2),
    "clients-device-past-the-end": ("client-analytics", {"device_type": "desktop", "offset": 9}, 3),
    "clients-a-page-inside": ("client-analytics", {"limit": 2, "offset": 2}, 1),
    # totals (series_15m) and distinct blocked IPs (blocked_15m) in place of one raw
    # summary scan, blocked IPs, rule matches, reasons, bucket list, series (no rule has
    # targets); exact=true: the one raw summary scan again
    "blocking": ("blocking-stats", {}, 7),
    "blocking-daily": ("blocking-stats", {"time_bucket": "1d", "limit": 3}, 7),
    "blocking-exact": ("blocking-stats", {"exact": "true"}, 6),
}


@pytest.mark.parametrize("case", list(GET_COUNTS))
def test_get_endpoint_queries_per_request(client, spy, case):
    endpoint, params, expected = GET_COUNTS[case]
    response = get(client, endpoint, **params)
    assert response.status_code == 200, response.content[:300]
    assert spy.count == expected, spy.sql


def test_blocking_stats_adds_one_query_for_rule_targets(client, spy):
    """Rules with static targets (IPs, countries, agents) add one scan for all of them;
    rate-based rules have none."""
    BlockingRule.objects.create(
        name="rate",
        rule_type="rate_based_blocking",
        project_id=P1,
        rule_config={"threshold": 10, "window_seconds": 60},
    )
    assert get(client, "blocking-stats").status_code == 200
    assert spy.count == 7
    spy.clear()
    BlockingRule.objects.create(
        name="ips",
        rule_type="ip_blocking",
        project_id=P1,
        rule_config={"ip_addresses": ["10.0.0.0/24"]},
    )
    BlockingRule.objects.create(
        name="countries",
        rule_type="country_blocking",
        project_id=P1,
        rule_config={"countries": ["DE"]},
    )
    response = get(client, "blocking-stats", limit=5)
    assert response.status_code == 200
    assert spy.count == 8, spy.sql


# --- cache hits -----------------------------------------------------------------------------

HIT_REQUESTS: dict[str, Callable[[Any], Any]] = {
    "analytics": lambda c: analytics(c, **TOP, compare_previous=True),
    "geographical-stats": lambda c: get(c, "geographical-stats"),
    "top-routes": lambda c: get(c, "top-routes"),
    "client-analytics": lambda c: get(c, "client-analytics", device_type="desktop"),
    "blocking-stats": lambda c: get(c, "blocking-stats"),
}


@pytest.mark.parametrize("endpoint", list(HIT_REQUESTS))
def test_a_cache_hit_issues_no_query(client, spy, endpoint):
    first = HIT_REQUESTS[endpoint](client)
    assert first.status_code == 200
    assert first["X-Cache"] == "MISS"
    assert spy.count > 0
    spy.clear()
    second = HIT_REQUESTS[endpoint](client)
    assert second["X-Cache"] == "HIT"
    assert spy.count == 0, spy.sql
    assert second.content == first.content


SAVED_COUNTS: dict[str, tuple[dict[str, Any], int]] = {
    "analytics": (TOP, 3),
    "geographical-stats": ({}, 1),
    "top-routes": ({}, 1),
    "client-analytics": ({"device_type": "desktop"}, 2),
    "blocking-stats": ({}, 7),  # as GET_COUNTS["blocking"]
}


@pytest.mark.parametrize("endpoint", list(SAVED_COUNTS))
def test_a_saved_query_run_costs_what_its_endpoint_costs_then_nothing(client, spy, endpoint):
    params, expected = SAVED_COUNTS[endpoint]
    created = client.post(
        "/gateway/saved-queries",
        {
            "name": f"count-{endpoint}",
            "endpoint": endpoint,
            "time_window": "absolute",
            "params": {**WINDOW, **params},
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    assert spy.count == 0  # validating the params runs no query
    run_url = f"/gateway/saved-queries/{created.json()['data']['id']}/run"
    first = client.post(run_url)
    assert first.status_code == 200
    assert spy.count == expected, spy.sql
    spy.clear()
    second = client.post(run_url)
    assert second["X-Cache"] == "HIT"
    assert spy.count == 0


DASHBOARD_COUNTS = {"overview": 2, "geography": 1, "top-routes": 1, "blocking": 7}


@pytest.mark.parametrize("view", list(DASHBOARD_COUNTS))
def test_a_dashboard_view_costs_what_its_endpoint_costs_then_nothing(client, spy, view):
    url = f"/gateway/dashboards/{view}"
    first = client.get(url, {"project_id": str(P1)})
    assert first.status_code == 200, first.content[:300]
    assert spy.count == DASHBOARD_COUNTS[view], spy.sql
    spy.clear()
    second = client.get(url, {"project_id": str(P1)})
    assert second["X-Cache"] == "HIT"
    assert spy.count == 0


def test_a_denied_request_issues_no_query(client, spy):
    foreign = str(uid("counts-foreign"))
    assert analytics(client, project_ids=[foreign]).status_code == 403
    assert get(client, "top-routes", project_ids=foreign).status_code == 403
    assert client.get("/gateway/dashboards/overview", {"project_id": foreign}).status_code == 403
    assert spy.count == 0


def test_an_invalid_request_issues_no_query(client, spy):
    assert analytics(client, metrics=["nope"]).status_code == 400
    assert get(client, "client-analytics", limit="0").status_code == 400
    assert spy.count == 0


# --- Postgres: list endpoints do not grow with their rows ----------------------------------


def _postgres_queries(client: Any, url: str) -> int:
    client.get(url)  # warm per-process caches (content types, the key lookup)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content[:300]
    return len(captured.captured_queries)


def _add_rules(n: int, users: list[Any], clients: list[ApiClient]) -> None:
    for i in range(n):
        BlockingRule.objects.create(
            name=f"rule-{uuid.uuid4().hex[:8]}",
            rule_type="country_blocking",
            rule_config={"countries": ["DE"]},
            project_id=P1 if i % 2 else None,
            created_by=users[i % len(users)] if i % 3 else None,
            created_by_client=clients[i % len(clients)] if i % 3 == 0 else None,
        )


def test_blocking_rules_list_queries_do_not_grow_with_rules(superuser_client, django_user_model):
    users = [
        django_user_model.objects.create_user(username=f"author-{i}", password="pw")
        for i in range(6)
    ]
    clients = [ApiClient.create_with_key(name=f"author-client-{i}")[0] for i in range(6)]
    _add_rules(3, users, clients)
    few = _postgres_queries(superuser_client, "/gateway/blocking-rules")
    _add_rules(30, users, clients)
    many = _postgres_queries(superuser_client, "/gateway/blocking-rules?page_size=100")
    assert (
        superuser_client.get("/gateway/blocking-rules?page_size=100").json()["data"]["count"] == 33
    )
    assert many == few


def _add_saved(n: int, users: list[Any], clients: list[ApiClient]) -> None:
    for i in range(n):
        owner = (
            {"owner": users[(i // 2) % len(users)]}
            if i % 2
            else {"owner_client": clients[(i // 2) % len(clients)]}
        )
        SavedQuery.objects.create(
            name=f"saved-{uuid.uuid4().hex[:8]}",
            endpoint="top-routes",
            time_window="last_24h",
            params={},
            is_shared=True,
            **owner,
        )


def test_saved_queries_list_queries_do_not_grow_with_rows(superuser_client, django_user_model):
    users = [
        django_user_model.objects.create_user(username=f"owner-{i}", password="pw")
        for i in range(6)
    ]
    clients = [ApiClient.create_with_key(name=f"owner-client-{i}")[0] for i in range(6)]
    _add_saved(3, users, clients)
    few = _postgres_queries(superuser_client, "/gateway/saved-queries")
    _add_saved(30, users, clients)
    many = _postgres_queries(superuser_client, "/gateway/saved-queries?page_size=100")
    listed = superuser_client.get("/gateway/saved-queries?page_size=100").json()["data"]
    assert listed["count"] == 33
    assert len({q["owner"] for q in listed["results"]}) == 12
    assert many == few


@pytest.mark.parametrize("endpoint", ["/gateway/blocking-rules", "/gateway/saved-queries"])
def test_list_endpoints_stay_within_a_small_fixed_number_of_queries(
    superuser_client, django_assert_max_num_queries, endpoint
):
    superuser_client.get(endpoint)
    with django_assert_max_num_queries(8):
        assert superuser_client.get(endpoint).status_code == 200
