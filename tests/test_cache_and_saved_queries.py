"""Response caching on real Redis, saved queries, and Celery refreshing them on a real
in-process worker over the Redis broker."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.cache import cache

from analytics import cache as response_cache
from analytics.saved_queries import SavedQuery, saved_query_run
from tests import analytics_oracle as oracle
from tests.conftest import make_row

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"], transaction=True)

P1, P2 = str(oracle.PROJECTS[0]), str(oracle.PROJECTS[1])
BODY = {
    "start_time": "2024-01-01T00:00:00Z",
    "end_time": "2024-01-02T00:00:00Z",
    "time_bucket": "6h",
    "metrics": ["total_requests", "p95_response_time"],
}


@pytest.fixture
def rows(clickhouse: Any) -> None:
    t = datetime(2024, 1, 1, 3, tzinfo=UTC)
    clickhouse(
        [make_row(timestamp=t, project_id=oracle.PROJECTS[0], response_time_ms=10)] * 3
        + [make_row(timestamp=t, project_id=oracle.PROJECTS[1], response_time_ms=20)]
    )


def post(client: Any, **body: Any) -> Any:
    return client.post("/gateway/analytics", {**BODY, **body}, format="json")


def test_second_identical_request_is_a_hit_with_identical_body(superuser_client, rows):
    first = post(superuser_client)
    second = post(superuser_client)
    assert first["X-Cache"] == "MISS"
    assert second["X-Cache"] == "HIT"
    assert "Age" in second
    assert second.json() == first.json()


def test_cached_answer_lives_in_redis(superuser_client, rows):
    post(superuser_client)
    keys = cache.keys("response:*")
    assert len(keys) == 1
    assert cache.ttl(keys[0]) == pytest.approx(300, abs=2)  # CACHE_TTL: range long past


def test_a_different_project_scope_is_a_miss_and_never_sees_the_other_data(
    api_client_factory, rows
):
    one = api_client_factory([P1])
    two = api_client_factory([P2])
    first = post(one)
    second = post(two)
    assert second["X-Cache"] == "MISS"
    assert first.json()["data"]["summary"]["total_requests"] == 3
    assert second.json()["data"]["summary"]["total_requests"] == 1
    assert post(two).json()["data"]["summary"]["total_requests"] == 1


def test_entry_expires_after_ttl_by_the_clock_not_by_sleeping(superuser_client, rows, monkeypatch):
    now = time.time()
    monkeypatch.setattr(response_cache, "clock", lambda: now)
    assert post(superuser_client)["X-Cache"] == "MISS"
    monkeypatch.setattr(response_cache, "clock", lambda: now + 299)
    hit = post(superuser_client)
    assert hit["X-Cache"] == "HIT"
    assert hit["Age"] == "299"
    monkeypatch.setattr(response_cache, "clock", lambda: now + 301)
    assert post(superuser_client)["X-Cache"] == "MISS"


def test_ranges_reaching_now_get_the_short_ttl(settings):
    now = time.time()
    recent = datetime.fromtimestamp(now, tz=UTC)
    assert response_cache.ttl_for(recent, now) == settings.CACHE_RECENT_TTL
    assert response_cache.ttl_for(recent - timedelta(days=1), now) == settings.CACHE_TTL


def test_cache_disabled_bypasses(superuser_client, rows, settings):
    settings.CACHE_ENABLED = False
    assert post(superuser_client)["X-Cache"] == "BYPASS"
    assert post(superuser_client)["X-Cache"] == "BYPASS"
    assert cache.keys("response:*") == []


def test_redis_unreachable_still_answers_200(superuser_client, rows, settings):
    unreachable = {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}
    settings.CACHES = {**settings.CACHES, "default": unreachable}  # nothing listens on :1
    with pytest.raises(Exception, match="Connection refused"):
        cache.get("probe")  # the cache really is down
    response = post(superuser_client)
    assert response.status_code == 200, response.content
    assert response.json()["data"]["summary"]["total_requests"] == 4
    assert response["X-Cache"] == "MISS"


def test_invalidating_an_endpoint_makes_its_answers_misses(superuser_client, rows):
    post(superuser_client)
    assert post(superuser_client)["X-Cache"] == "HIT"
    response_cache.invalidate_endpoint("analytics")
    assert post(superuser_client)["X-Cache"] == "MISS"


# --- saved queries ---------------------------------------------------------------------

SAVED = {
    "name": "Daily",
    "endpoint": "analytics",
    "time_window": "absolute",
    "params": BODY,
    "refresh_interval": 300,
}


def test_saved_query_is_validated_by_its_endpoint_serializer(superuser_client):
    bad = superuser_client.post(
        "/gateway/saved-queries", {**SAVED, "params": {**BODY, "metrics": ["nope"]}}, format="json"
    )
    assert bad.status_code == 400
    assert "nope" in bad.json()["error"]["message"]
    relative_with_times = superuser_client.post(
        "/gateway/saved-queries", {**SAVED, "time_window": "last_24h"}, format="json"
    )
    assert relative_with_times.status_code == 400
    assert "remove start_time" in relative_with_times.json()["error"]["message"]
    assert SavedQuery.objects.count() == 0
    good = superuser_client.post("/gateway/saved-queries", SAVED, format="json")
    assert good.status_code == 201, good.content
    assert good.json()["data"]["endpoint"] == "analytics"


def test_saved_query_for_a_get_endpoint_validates_too(superuser_client):
    bad = superuser_client.post(
        "/gateway/saved-queries",
        {
            "name": "routes",
            "endpoint": "top-routes",
            "time_window": "last_7d",
            "params": {"limit": 1000},
        },
        format="json",
    )
    assert bad.status_code == 400
    good = superuser_client.post(
        "/gateway/saved-queries",
        {
            "name": "routes",
            "endpoint": "top-routes",
            "time_window": "last_7d",
            "params": {"limit": 5, "order_by": "errors"},
        },
        format="json",
    )
    assert good.status_code == 201, good.content


def test_running_a_saved_query_answers_like_the_endpoint_and_then_from_cache(
    superuser_client, rows
):
    saved_id = superuser_client.post("/gateway/saved-queries", SAVED, format="json").json()["data"][
        "id"
    ]
    first = superuser_client.post(f"/gateway/saved-queries/{saved_id}/run")
    second = superuser_client.post(f"/gateway/saved-queries/{saved_id}/run")
    assert first.status_code == 200, first.content
    assert first["X-Cache"] == "MISS"
    assert second["X-Cache"] == "HIT"
    assert first.json()["data"]["summary"] == post(superuser_client).json()["data"]["summary"]


def test_run_applies_the_runners_scope_and_only_shared_or_own_queries(
    superuser_client, api_client_factory, rows
):
    saved = superuser_client.post(
        "/gateway/saved-queries", {**SAVED, "is_shared": True}, format="json"
    ).json()["data"]
    other = api_client_factory([P2])
    answer = other.post(f"/gateway/saved-queries/{saved['id']}/run")
    assert answer.status_code == 200
    assert answer.json()["data"]["summary"]["total_requests"] == 1  # only P2's row
    private = superuser_client.post(
        "/gateway/saved-queries", {**SAVED, "name": "mine"}, format="json"
    ).json()["data"]
    assert other.post(f"/gateway/saved-queries/{private['id']}/run").status_code == 404
    assert other.delete(f"/gateway/saved-queries/{saved['id']}").status_code == 403


def test_relative_windows_align_so_runs_within_an_interval_share_the_cache(superuser):
    saved = SavedQuery(
        name="r",
        endpoint="analytics",
        owner=superuser,
        time_window="last_24h",
        params={"time_bucket": "1h"},
        refresh_interval=300,
    )
    base = 1_700_000_160.0  # 60 s past a 300 s boundary (1_700_000_100)
    first = saved.resolved_params(now=base)
    assert first == saved.resolved_params(now=base + 200)
    assert first != saved.resolved_params(now=base + 241)
    end = datetime.fromisoformat(first["end_time"])
    assert end.timestamp() % 300 == 0
    assert end - datetime.fromisoformat(first["start_time"]) == timedelta(hours=24)


def test_refresh_then_read_is_a_hit(superuser, rows):
    from analytics.saved_queries import saved_query_refresh

    saved = SavedQuery.objects.create(
        name="r",
        endpoint="analytics",
        owner=superuser,
        time_window="absolute",
        params=BODY,
        refresh_interval=300,
    )
    refreshed = saved_query_refresh(saved)
    assert refreshed.status_code == 200
    assert refreshed.cache_status == "MISS"
    read = saved_query_run(saved, superuser)
    assert read.cache_status == "HIT"
    saved.refresh_from_db()
    assert saved.last_refreshed_at is not None
    assert saved.last_duration_ms > 0


# --- Celery ----------------------------------------------------------------------------


@pytest.fixture
def celery_worker_on_redis(settings: Any) -> Any:
    """A real worker thread consuming the Redis broker (not eager)."""
    from celery.contrib.testing.worker import start_worker

    from budmetrics_site.celery import app

    broker = settings.REDIS_URL.rsplit("/", 1)[0] + "/15"
    saved = {
        "task_always_eager": app.conf.task_always_eager,
        "broker_url": app.conf.broker_url,
        "task_default_queue": app.conf.task_default_queue,
    }
    app.conf.update(
        task_always_eager=False,
        broker_url=broker,
        task_default_queue=f"test-{id(app)}-{time.time_ns()}",
    )
    _drop_broker_connections(app)  # an earlier test's pool would still publish to the old URL
    with start_worker(
        app, pool="solo", perform_ping_check=False, loglevel="WARNING", shutdown_timeout=10
    ):
        yield app
    app.conf.update(**saved)
    _drop_broker_connections(app)


def _drop_broker_connections(app: Any) -> None:
    """Celery keeps its connection and producer pools for the app's lifetime, bound to the
    broker URL they were made with; a changed ``broker_url`` needs fresh ones."""
    app._pool = None
    app.amqp._producer_pool = None


def _wait_for(predicate: Any, seconds: float = 90.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_worker_refreshes_due_saved_queries_and_the_next_read_hits(
    celery_worker_on_redis, superuser, rows
):
    from analytics.tasks import refresh_due_saved_queries

    saved = SavedQuery.objects.create(
        name="w",
        endpoint="analytics",
        owner=superuser,
        time_window="absolute",
        params=BODY,
        refresh_interval=60,
    )
    assert refresh_due_saved_queries.delay().id
    assert _wait_for(lambda: SavedQuery.objects.get(pk=saved.pk).last_refreshed_at is not None)
    assert saved_query_run(saved, superuser).cache_status == "HIT"


def test_lock_prevents_a_double_refresh(superuser, rows):
    from analytics.tasks import lock_key, refresh_saved_query

    saved = SavedQuery.objects.create(
        name="l",
        endpoint="analytics",
        owner=superuser,
        time_window="absolute",
        params=BODY,
        refresh_interval=60,
    )
    assert cache.add(lock_key(saved.pk), "1", timeout=60)  # a refresh is in progress
    assert refresh_saved_query.apply(args=[str(saved.pk)]).get() == "locked"
    saved.refresh_from_db()
    assert saved.last_refreshed_at is None
    cache.delete(lock_key(saved.pk))
    assert refresh_saved_query.apply(args=[str(saved.pk)]).get() == "refreshed"


def test_blocking_stats_are_cached_and_a_rule_change_invalidates_them(superuser_client, rows):
    url = "/gateway/blocking-stats?start_time=2024-01-01T00:00:00Z&end_time=2024-01-02T00:00:00Z"
    assert superuser_client.get(url)["X-Cache"] == "MISS"
    assert superuser_client.get(url)["X-Cache"] == "HIT"
    created = superuser_client.post(
        "/gateway/blocking-rules",
        {
            "name": "block-de",
            "rule_type": "country_blocking",
            "rule_config": {"countries": ["DE"]},
            "project_id": P1,
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    after = superuser_client.get(url)
    assert after["X-Cache"] == "MISS"
    names = [r["name"] for r in after.json()["data"]["blocking_rules"]]
    assert "block-de" in names


def test_inprocess_schedule_runs_every_job_and_refreshes_due_saved_queries(superuser, rows):
    from budmetrics_site.celery import BEAT_SCHEDULE
    from budmetrics_site.jobs import run_due_jobs

    saved = SavedQuery.objects.create(
        name="j",
        endpoint="analytics",
        owner=superuser,
        time_window="absolute",
        params=BODY,
        refresh_interval=60,
    )
    next_run: dict[str, float] = {}
    assert run_due_jobs(next_run, now=1000.0) == list(BEAT_SCHEDULE)
    saved.refresh_from_db()
    assert saved.last_refreshed_at is not None
    assert run_due_jobs(next_run, now=1001.0) == []  # nothing due again yet
    assert "refresh-due-saved-queries" in run_due_jobs(next_run, now=1031.0)


def test_auto_and_the_bucket_it_resolves_to_do_not_share_an_entry(superuser_client, rows):
    """`auto` answers with a warning naming the bucket it chose; asking for that bucket
    directly has none, so the two answers differ and must not share a cache entry."""
    auto = post(superuser_client, time_bucket="auto")
    direct = post(superuser_client, time_bucket=auto.json()["data"]["query"]["time_bucket"])
    assert (auto["X-Cache"], direct["X-Cache"]) == ("MISS", "MISS")
    assert auto.json()["data"]["meta"]["warnings"] != []
    assert direct.json()["data"]["meta"]["warnings"] == []


def test_a_metric_order_is_its_own_question(superuser_client, rows):
    forward = post(superuser_client, metrics=["total_requests", "p95_response_time"])
    backward = post(superuser_client, metrics=["p95_response_time", "total_requests"])
    assert backward["X-Cache"] == "MISS"
    assert backward.json()["data"]["query"]["metrics"] == ["p95_response_time", "total_requests"]
    assert forward.json()["data"]["query"]["metrics"] == ["total_requests", "p95_response_time"]
