"""Throttling on the real Redis cache: failed authentication per client address, and the
fairness unit (caller x project scope) under a higher per-caller ceiling."""

from __future__ import annotations

import socket
import uuid
from typing import Any

import pytest
from rest_framework.test import APIClient

from analytics.access import throttling

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

P1 = uuid.UUID("11111111-1111-1111-1111-111111111111")
P2 = uuid.UUID("22222222-2222-2222-2222-222222222222")
P3 = uuid.UUID("33333333-3333-3333-3333-333333333333")
STATS_URL = "/gateway/blocking-stats"
WINDOW = {"start_time": "2025-01-15T00:00:00Z", "end_time": "2025-01-16T00:00:00Z"}
ANALYTICS_BODY = {"start_time": "2025-01-15T00:00:00Z", "end_time": "2025-01-16T00:00:00Z"}


@pytest.fixture(autouse=True)
def _still_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hold every window still mid-minute: a count never resets half-way through a test."""
    monkeypatch.setattr(throttling, "clock", lambda: 1_800_000_030.0)


def _rates(settings: Any, **rates: str | None) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"client": None, "anon": None, "project": None, **rates},
    }


# --- Failed authentication ------------------------------------------------------------------


def test_failed_authentication_is_throttled_per_address(settings, api_client_factory, clickhouse):
    settings.AUTH_FAILURE_RATE = "30/min"
    _rates(settings)
    attacker = APIClient(REMOTE_ADDR="192.0.2.10")
    statuses = []
    for attempt in range(150):
        if attempt % 2:
            attacker.credentials(HTTP_AUTHORIZATION=f"Bearer bm_guess{attempt}_{attempt:040d}")
        else:
            attacker.credentials()  # no key at all
        statuses.append(attacker.get(STATS_URL, WINDOW).status_code)
    assert statuses[:30] == [401] * 30
    assert statuses[30:] == [429] * 120

    throttled = attacker.get(STATS_URL, WINDOW)
    assert throttled.status_code == 429
    assert throttled["Retry-After"] == "30"  # the window (a minute) ends in 30 s
    assert throttled.json()["error"]["code"] == "throttled"
    assert "AUTH_FAILURE_RATE" in throttled.json()["error"]["details"]["limit"]

    # Another address is untouched, and still told its key is wrong.
    other = APIClient(REMOTE_ADDR="192.0.2.11")
    other.credentials(HTTP_AUTHORIZATION="Bearer bm_nope_x")
    assert other.get(STATS_URL, WINDOW).status_code == 401

    # A good key from the throttled address waits too: the key is never looked at, so a
    # right guess cannot be told from a wrong one.
    good = api_client_factory([P1])
    assert good.get(STATS_URL, WINDOW).status_code == 200
    good.defaults["REMOTE_ADDR"] = "192.0.2.10"
    assert good.get(STATS_URL, WINDOW).status_code == 429
    # The probes never are throttled.
    assert attacker.get("/healthz").status_code == 200


def test_forwarded_for_is_ignored_unless_proxies_are_trusted(settings, clickhouse):
    settings.AUTH_FAILURE_RATE = "2/min"
    _rates(settings)
    settings.TRUSTED_PROXY_COUNT = 0
    client = APIClient(REMOTE_ADDR="198.51.100.1")
    spoofed = [
        client.get(STATS_URL, WINDOW, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}").status_code
        for n in range(3)
    ]
    assert spoofed == [401, 401, 429]  # a made-up X-Forwarded-For does not escape

    settings.TRUSTED_PROXY_COUNT = 1  # one proxy at 198.51.100.1 appends the client's address
    behind_proxy = [
        client.get(STATS_URL, WINDOW, HTTP_X_FORWARDED_FOR=f"forged, 203.0.113.{n}").status_code
        for n in range(3)
    ]
    assert behind_proxy == [401, 401, 401]  # three clients, one failure each
    again = client.get(STATS_URL, WINDOW, HTTP_X_FORWARDED_FOR="203.0.113.0")
    assert again.status_code == 401
    third = client.get(STATS_URL, WINDOW, HTTP_X_FORWARDED_FOR="x, 203.0.113.0")
    assert third.status_code == 429  # 203.0.113.0's third failure


def test_auth_failure_throttle_off(settings, clickhouse):
    settings.AUTH_FAILURE_RATE = None
    _rates(settings)
    client = APIClient(REMOTE_ADDR="192.0.2.20")
    assert {client.get(STATS_URL, WINDOW).status_code for _ in range(40)} == {401}


# --- Fairness: caller x project scope -------------------------------------------------------


def test_one_project_using_up_its_budget_does_not_throttle_another(
    settings, api_client_factory, clickhouse
):
    _rates(settings, project="3/min", client="100/min")
    budapp = api_client_factory([P1, P2, P3])  # one service key for every tenant
    busy = [budapp.get(STATS_URL, {**WINDOW, "project_ids": str(P1)}) for _ in range(4)]
    assert [r.status_code for r in busy] == [200, 200, 200, 429]
    assert busy[-1]["Retry-After"] == "30"

    # Project 2 through the same key: its own budget, in the query string or a JSON body.
    assert budapp.get(STATS_URL, {**WINDOW, "project_ids": str(P2)}).status_code == 200
    body = {**ANALYTICS_BODY, "filters": {"project_id": str(P3)}}
    posts = [budapp.post("/gateway/analytics", body, format="json") for _ in range(4)]
    assert [r.status_code for r in posts] == [200, 200, 200, 429]
    # Project 1 named in a body shares the bucket project 1 used up in query strings.
    p1_body = {**ANALYTICS_BODY, "project_ids": [str(P1)]}
    assert budapp.post("/gateway/analytics", p1_body, format="json").status_code == 429
    # Another key reading project 1 has its own budget.
    other_key = api_client_factory([P1])
    assert other_key.get(STATS_URL, {**WINDOW, "project_ids": str(P1)}).status_code == 200


def test_the_per_key_ceiling_still_bounds_all_projects(settings, api_client_factory, clickhouse):
    _rates(settings, project="100/min", client="4/min")
    budapp = api_client_factory([P1, P2, P3])
    statuses = [
        budapp.get(STATS_URL, {**WINDOW, "project_ids": str(project)}).status_code
        for project in (P1, P2, P3, P1, P2)
    ]
    assert statuses == [200, 200, 200, 200, 429]


def test_saved_query_runs_count_against_the_saved_projects(
    settings, api_client_factory, clickhouse
):
    _rates(settings, project="2/min", client="100/min")
    budapp = api_client_factory([P1, P2])
    created = budapp.post(
        "/gateway/saved-queries",
        {
            "name": "p1 blocking",
            "endpoint": "blocking-stats",
            "params": {"project_ids": [str(P1)]},
            "time_window": "last_24h",
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    run_url = f"/gateway/saved-queries/{created.json()['data']['id']}/run"
    assert budapp.post(run_url).status_code == 200
    assert budapp.get(STATS_URL, {**WINDOW, "project_ids": str(P1)}).status_code == 200
    assert budapp.post(run_url).status_code == 429  # project 1's third request
    assert budapp.get(STATS_URL, {**WINDOW, "project_ids": str(P2)}).status_code == 200


def test_throttles_fail_open_when_redis_is_unreachable(settings, api_client_factory, clickhouse):
    """Redis down (a refused loopback port): no 429 from a count that cannot be read, and
    never a 500; wrong keys are still 401 and a good key still answers."""
    settings.AUTH_FAILURE_RATE = "2/min"
    _rates(settings, project="1/min", client="1/min")
    good = api_client_factory([P1])
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        refused = probe.getsockname()[1]
    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{refused}/0",
        }
    }
    wrong = APIClient(REMOTE_ADDR="192.0.2.30")
    wrong.credentials(HTTP_AUTHORIZATION="Bearer bm_nope_x")
    assert [wrong.get(STATS_URL, WINDOW).status_code for _ in range(4)] == [401] * 4
    params = {**WINDOW, "project_ids": str(P1)}
    assert [good.get(STATS_URL, params).status_code for _ in range(3)] == [200] * 3
