"""The endpoint registry and ``answer``: the one path every data answer takes (views, saved
queries, dashboards, Celery), on real chDB, Postgres and Redis.

Covers: ``answer`` gives the HTTP endpoint's exact bytes without any request; errors are
raised, not rendered, so Celery's retry policy sees a real ClickHouse timeout (saved-query
refresh and dashboard warming); the cache policy replaces request flags; one canonical
form feeds both the cache key and the audit.
"""

from __future__ import annotations

import pathlib
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from celery.signals import task_retry
from django.core.cache import cache
from rest_framework import exceptions

from analytics import cache as response_cache
from analytics import dashboards
from analytics.access.audit import normalise_params
from analytics.access.models import QueryAudit
from analytics.access.principals import ApiClientPrincipal
from analytics.access.scope import resolve_project_scope, scope_for
from analytics.canonical import canonical
from analytics.endpoints import ENDPOINTS, NORMAL, CachePolicy, answer, validate
from analytics.query.scope import ProjectScope
from analytics.saved_queries import SavedQuery, saved_query_run
from budmetrics_site.errors import QueryTimeout
from tests import analytics_oracle as oracle
from tests.conftest import ZERO_UUID, clickhouse_client, make_row

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"], transaction=True)

P1, P2 = str(oracle.PROJECTS[0]), str(oracle.PROJECTS[1])
DAY = {"start_time": "2024-01-01T00:00:00Z", "end_time": "2024-01-02T00:00:00Z"}
ANALYTICS = {**DAY, "time_bucket": "6h", "metrics": ["total_requests", "p95_response_time"]}


@pytest.fixture
def rows(clickhouse: Any) -> None:
    t = datetime(2024, 1, 1, 3, tzinfo=UTC)
    clickhouse(
        [
            make_row(
                timestamp=t,
                project_id=oracle.PROJECTS[0],
                client_id=f"key-{i % 3}",
                country_code="DE",
                path=f"/v1/files/file-{i}",
                method="GET",
            )
            for i in range(6)
        ]
        + [make_row(timestamp=t, project_id=oracle.PROJECTS[1], client_id="other")]
    )


def _insert_many(project: str, start: str, count: int) -> None:
    """``count`` rows of one project, one a second from ``start``, written by ClickHouse
    itself: enough work for a query to outlast a tiny time limit."""
    clickhouse_client().command(
        "INSERT INTO gateway_analytics (request_id, timestamp, project_id, model_id, "
        "endpoint_id, method, path, status_code, response_time_ms, client_id) "
        "SELECT generateUUIDv4(), {start:DateTime64(3, 'UTC')} + toIntervalSecond(number % 43200), "
        "{project:UUID}, {zero:UUID}, {zero:UUID}, 'POST', "
        "concat('/v1/r/', toString(number % 5000)), 200 + (number % 7) * 50, "
        "number % 3000, concat('c', toString(number % 9000)) FROM numbers({count:UInt64})",
        parameters={"start": start, "project": project, "zero": str(ZERO_UUID), "count": count},
    )


# --- answer: the endpoint's own answer, without a request -----------------------------------

GET_URLS = {
    "geographical-stats": "/gateway/geographical-stats",
    "top-routes": "/gateway/top-routes",
    "client-analytics": "/gateway/client-analytics",
    "blocking-stats": "/gateway/blocking-stats",
}


@pytest.mark.parametrize("name", sorted(GET_URLS))
def test_answer_gives_the_get_endpoints_exact_bytes(name, superuser, superuser_client, rows):
    params = {**DAY, "project_ids": P1, "limit": "2"}
    direct = answer(ENDPOINTS[name], params, superuser)
    assert direct.cache.status == "MISS"
    over_http = superuser_client.get(GET_URLS[name], params)
    assert over_http.status_code == 200, over_http.content
    assert over_http["X-Cache"] == "HIT"  # the same question: the entry answer() stored
    if name != "client-analytics":  # its page links name the caller's URL
        assert over_http.content == direct.payload
    assert over_http.json()["data"].keys() == orjson.loads(direct.payload)["data"].keys()


def test_answer_gives_the_analytics_endpoints_exact_bytes(superuser, superuser_client, rows):
    over_http = superuser_client.post("/gateway/analytics", ANALYTICS, format="json")
    direct = answer(ENDPOINTS["analytics"], ANALYTICS, superuser)
    assert (over_http["X-Cache"], direct.cache.status) == ("MISS", "HIT")
    assert direct.payload == over_http.content
    assert direct.rows == len(over_http.json()["data"]["time_series"]) == 4


def test_answer_takes_json_params_like_a_query_string(superuser, rows):
    """A saved query stores JSON (lists, numbers, booleans); the GET form is text."""
    as_json = answer(
        ENDPOINTS["top-routes"],
        {**DAY, "project_ids": [P1], "limit": 2, "group_ids": True},
        superuser,
    )
    as_text = answer(
        ENDPOINTS["top-routes"],
        {**DAY, "project_ids": P1, "limit": "2", "group_ids": "true"},
        superuser,
    )
    assert as_text.cache.status == "HIT"
    assert as_text.payload == as_json.payload


def test_answer_applies_the_principals_scope(api_client_factory, rows):
    reader = ApiClientPrincipal(api_client_factory([P2]).api_client)
    mine = answer(ENDPOINTS["analytics"], ANALYTICS, reader)
    assert orjson.loads(mine.payload)["data"]["summary"]["total_requests"] == 1
    with pytest.raises(exceptions.PermissionDenied) as denied:
        answer(ENDPOINTS["analytics"], {**ANALYTICS, "project_ids": [P1]}, reader)
    assert P1 in str(denied.value.detail)


def test_answer_raises_invalid_input_instead_of_rendering_it(superuser):
    with pytest.raises(exceptions.ValidationError) as invalid:
        answer(ENDPOINTS["analytics"], {**ANALYTICS, "metrics": ["nope"]}, superuser)
    assert "nope" in str(invalid.value.detail)
    with pytest.raises(exceptions.NotAuthenticated):
        answer(ENDPOINTS["top-routes"], DAY, None)


def test_scope_for_a_principal_matches_scope_for_its_request(api_client_factory):
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    principal = ApiClientPrincipal(api_client_factory([P1]).api_client)
    request = Request(APIRequestFactory().get("/gateway/x"))
    request.user = principal
    assert scope_for(principal, []) == resolve_project_scope(request, [])
    assert scope_for(principal, [P1]) == resolve_project_scope(request, [P1])


# --- cache policy -------------------------------------------------------------------------


def test_refresh_policy_recomputes_and_ttl_policy_sets_the_lifetime(superuser, rows):
    endpoint = ENDPOINTS["analytics"]
    assert answer(endpoint, ANALYTICS, superuser).cache.status == "MISS"
    assert answer(endpoint, ANALYTICS, superuser, NORMAL).cache.status == "HIT"
    refreshed = answer(endpoint, ANALYTICS, superuser, CachePolicy(refresh=True, ttl=1234))
    assert refreshed.cache.status == "MISS"
    (key,) = cache.keys("response:*")
    assert cache.ttl(key) == pytest.approx(1234, abs=2)
    assert answer(endpoint, ANALYTICS, superuser).cache.status == "HIT"


# --- one canonical form for the cache key and the audit --------------------------------------


def test_equal_requests_share_one_cache_key_and_one_audit_record():
    endpoint = ENDPOINTS["top-routes"]
    one = validate(endpoint, {**DAY, "project_ids": f"{P1},{P2}"}).data
    other = validate(
        endpoint,
        {
            "start_time": "2024-01-01T01:00:00+01:00",
            "end_time": "2024-01-02T00:00:00",
            "project_ids": [P2, P1],
        },
    ).data
    scope = ProjectScope.only([P1, P2])
    assert response_cache.cache_key("top-routes", one, scope) == response_cache.cache_key(
        "top-routes", other, scope
    )
    assert normalise_params(one) == normalise_params(other) == canonical(one)
    assert canonical(one)["project_ids"] == sorted([P1, P2])
    assert canonical(one)["start_time"] == "2024-01-01T00:00:00Z"


def test_the_audit_only_makes_the_canonical_form_storable():
    hostile = {"search": "a\x00b" + "x" * 3000, "limit": 5}
    stored = normalise_params(hostile)
    assert stored["search"].startswith("a\\u0000b")
    assert len(stored["search"]) == 2000
    assert canonical(hostile)["search"] == hostile["search"]  # the cache key keeps it all


# --- saved queries, dashboards: answered and audited without fake requests ------------------


def test_no_production_code_builds_requests_or_steers_by_request_flags():
    root = pathlib.Path(__file__).resolve().parent.parent
    sources = [
        p
        for app in ("analytics", "blocking", "geo", "budmetrics_site")
        for p in (root / app).rglob("*.py")
    ]
    for needle in ("_force_auth_user", "WSGIRequest", "skip_throttle", "cache_refresh"):
        offenders = [p.name for p in sources if needle in p.read_text()]
        assert offenders == [], needle


def test_a_saved_query_run_is_audited_as_its_endpoint(superuser_client, superuser, rows):
    saved = SavedQuery.objects.create(
        name="a",
        endpoint="top-routes",
        owner=superuser,
        time_window="absolute",
        params={**DAY, "limit": 2},
    )
    response = superuser_client.post(f"/gateway/saved-queries/{saved.pk}/run")
    assert response.status_code == 200, response.content
    audit = QueryAudit.objects.get()
    assert (audit.endpoint, audit.status_code, audit.rows_returned) == ("top-routes", 200, 2)
    assert audit.params["limit"] == 2
    assert audit.request_id == response["X-Request-ID"]


def test_a_saved_query_run_counts_once_against_the_callers_rate_limit(
    settings, api_client_factory, rows
):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"client": "3/min", "anon": "3/min"},
    }
    caller = api_client_factory([P1])
    created = caller.post(
        "/gateway/saved-queries",
        {"name": "t", "endpoint": "top-routes", "time_window": "absolute", "params": DAY},
        format="json",
    )
    assert created.status_code == 201, created.content
    url = f"/gateway/saved-queries/{created.json()['data']['id']}/run"
    assert [caller.post(url).status_code for _ in range(3)] == [200, 200, 429]


def test_a_saved_client_analytics_run_links_its_pages_to_the_endpoint(superuser_client, rows):
    saved = superuser_client.post(
        "/gateway/saved-queries",
        {
            "name": "clients",
            "endpoint": "client-analytics",
            "time_window": "absolute",
            "params": {**DAY, "project_ids": [P1], "limit": 1},
        },
        format="json",
    ).json()["data"]
    page = superuser_client.post(f"/gateway/saved-queries/{saved['id']}/run").json()["data"]
    assert len(page["clients"]) == 1
    following = page["pagination"]["next"]
    assert following.startswith("http://testserver/gateway/client-analytics?")
    second = superuser_client.get(following).json()["data"]
    assert second["pagination"]["offset"] == 1
    assert second["clients"][0]["client_id"] != page["clients"][0]["client_id"]


def test_errors_of_a_run_reach_the_caller_as_the_endpoint_would_answer(
    superuser_client, api_client_factory, rows
):
    saved = superuser_client.post(
        "/gateway/saved-queries",
        {
            "name": "p1",
            "endpoint": "analytics",
            "time_window": "absolute",
            "params": {**ANALYTICS, "project_ids": [P1]},
            "is_shared": True,
        },
        format="json",
    ).json()["data"]
    reader = api_client_factory([P2])
    denied = reader.post(f"/gateway/saved-queries/{saved['id']}/run")
    assert denied.status_code == 403
    assert P1 in denied.json()["error"]["message"]


# --- errors reach Celery: a real ClickHouse timeout is retried -------------------------------


@pytest.fixture
def retries(settings: Any) -> Any:
    """Records each Celery retry, and gives the retried attempt a normal time limit: the
    first attempt meets a real timeout, the retry succeeds."""
    seen: list[str] = []

    def on_retry(sender: Any = None, reason: Any = None, **kwargs: Any) -> None:
        seen.append(type(getattr(reason, "exc", reason)).__name__)
        settings.QUERY_TIMEOUT = 30

    task_retry.connect(on_retry, weak=False)
    yield seen
    task_retry.disconnect(on_retry)


TINY_TIMEOUT = 0.001  # seconds: far less than any query over the rows below needs


def test_a_timeout_in_a_saved_query_refresh_is_retried(superuser, clickhouse, settings, retries):
    from analytics.tasks import refresh_saved_query

    _insert_many(P1, "2024-01-01 00:00:00", 2_000_000)
    saved = SavedQuery.objects.create(
        name="slow",
        endpoint="analytics",
        owner=superuser,
        time_window="absolute",
        params=ANALYTICS,
        refresh_interval=60,
    )
    settings.QUERY_TIMEOUT = TINY_TIMEOUT
    with pytest.raises(QueryTimeout):
        saved_query_run(saved, superuser, refresh=True)  # the timeout is real
    audited = QueryAudit.objects.filter(endpoint="analytics").latest("created_at")
    assert (audited.status_code, audited.outcome) == (504, "error")
    assert refresh_saved_query.apply(args=[str(saved.pk)]).get() == "refreshed"
    assert retries == ["QueryTimeoutError"]
    saved.refresh_from_db()
    assert saved.last_refreshed_at is not None
    assert saved_query_run(saved, superuser).cache_status == "HIT"


def test_a_timeout_while_warming_dashboards_is_retried(clickhouse, settings, monkeypatch, retries):
    from analytics.tasks import warm_dashboards

    _insert_many(P1, "2025-03-10 00:00:00", 2_000_000)
    now = datetime(2025, 3, 10, 12, 34, 56, tzinfo=UTC).timestamp()
    monkeypatch.setattr(response_cache, "clock", lambda: now)
    settings.QUERY_TIMEOUT = TINY_TIMEOUT
    assert warm_dashboards.apply().get() == len(dashboards.VIEWS)
    assert retries == ["QueryTimeoutError"]
    run = dashboards.run_view("overview", oracle.PROJECTS[0], dashboards.warmer_principal())
    assert run.cache_status == "HIT"
