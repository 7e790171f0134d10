"""A BudApp dashboard session mix for locust (started by ``bench/load/run.py``).

BudApp proxies every user through one service key, so every simulated user sends the same
``Authorization: Bearer`` key (``LOAD_API_KEY``) and works in one project (users are
spread over ``LOAD_PROJECTS``). A user opens the five dashboard views of its project
(``overview``, ``geography``, ``top-routes``, ``blocking``, ``llm``), asks analytics
variants, reads the four GET endpoints and runs saved queries, with a short think time.

Every non-200 answer is a failure named by its kind (``server error 5xx``, ``throttled
429``, ``status NNN``); the ``X-Cache`` header of each answer is counted, and after
``LOAD_REDIS_DOWN_MARKER`` exists (the runner creates it when it kills Redis) counted
apart, so the runner can show that no answer came from the cache once Redis was gone.
Bounded: the run stops after ``LOAD_MAX_REQUESTS`` requests (and locust's ``--run-time``).
"""

from __future__ import annotations

import json
import os
import random
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from locust import HttpUser, between, events, task

API_KEY = os.environ.get("LOAD_API_KEY", "")
PROJECTS = [p for p in os.environ.get("LOAD_PROJECTS", "").split(",") if p]
SAVED = json.loads(os.environ.get("LOAD_SAVED", "{}"))  # project -> [saved query ids]
MAX_REQUESTS = int(os.environ.get("LOAD_MAX_REQUESTS", "100000"))
MARKER = os.environ.get("LOAD_REDIS_DOWN_MARKER", "")
COUNTS_FILE = os.environ.get("LOAD_COUNTS_FILE", "")
WAIT = [float(x) for x in os.environ.get("LOAD_WAIT", "0.2,1.0").split(",")]

DASHBOARD_VIEWS = ("overview", "geography", "top-routes", "blocking", "llm")

_lock = threading.Lock()
_sent = 0
_cache: Counter[str] = Counter()


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _window(days: int) -> tuple[str, str]:
    """A dashboard range ending at the next whole minute (what BudApp sends)."""
    end = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    return _iso(end - timedelta(days=days)), _iso(end)


def _analytics_variants(project: str) -> list[dict[str, Any]]:
    start7, end7 = _window(7)
    start1, end1 = _window(1)
    return [
        {  # the overview chart: 7 days hourly
            "filters": {"project_id": project},
            "start_time": start7,
            "end_time": end7,
            "time_bucket": "1h",
            "metrics": ["total_requests", "error_rate", "avg_response_time", "p95_response_time"],
        },
        {  # top 5 models and the rest, daily
            "project_ids": [project],
            "start_time": start7,
            "end_time": end7,
            "time_bucket": "1d",
            "metrics": ["total_requests", "total_tokens", "total_cost"],
            "group_by": ["model_name"],
            "top_n": 5,
            "include_other": True,
            "order_by": "total_requests",
        },
        {  # last day's server errors by country, compared with the day before
            "project_ids": [project],
            "start_time": start1,
            "end_time": end1,
            "time_bucket": "15m",
            "metrics": ["total_requests", "p95_response_time"],
            "filters": {"status_code": {"op": "gte", "value": 500}},
            "compare_previous": True,
        },
        {  # LLM figures by provider
            "project_ids": [project],
            "start_time": start1,
            "end_time": end1,
            "time_bucket": "1h",
            "metrics": ["p95_ttft", "output_tokens_per_second", "cache_hit_rate"],
            "group_by": ["model_provider"],
        },
    ]


def _count(response: Any) -> None:
    global _sent
    label = response.headers.get("X-Cache", "none")
    if MARKER and os.path.exists(MARKER):
        label = "after-redis-stop:" + label
    with _lock:
        _sent += 1
        _cache[label] += 1


class BudAppUser(HttpUser):
    wait_time = between(*WAIT)

    def on_start(self) -> None:
        self.project = PROJECTS[random.randrange(len(PROJECTS))]
        self.client.headers["Authorization"] = f"Bearer {API_KEY}"

    def _check(self, response: Any) -> None:
        _count(response)
        code = response.status_code
        if code == 200:
            response.success()
        elif code >= 500 or code == 0:
            response.failure(f"server error {code}")
        elif code == 429:
            response.failure("throttled 429")
        else:
            response.failure(f"status {code}")
        if _sent >= MAX_REQUESTS and self.environment.runner is not None:
            self.environment.runner.quit()

    def _get(self, path: str, name: str, params: dict[str, str]) -> None:
        with self.client.get(path, params=params, name=name, catch_response=True) as response:
            self._check(response)

    def _post(self, path: str, name: str, body: dict[str, Any] | None = None) -> None:
        with self.client.post(path, json=body, name=name, catch_response=True) as response:
            self._check(response)

    @task(4)
    def open_dashboard(self) -> None:
        """BudApp's dashboard page: its five views, one after another."""
        for view in DASHBOARD_VIEWS:
            self._get(
                f"/gateway/dashboards/{view}",
                f"GET /gateway/dashboards/{view}",
                {"project_id": self.project},
            )

    @task(4)
    def analytics(self) -> None:
        body = random.choice(_analytics_variants(self.project))
        self._post("/gateway/analytics", "POST /gateway/analytics", body)

    @task(3)
    def reports(self) -> None:
        """The four GET endpoints, as the report pages call them."""
        start, end = _window(7)
        window = {"project_ids": self.project, "start_time": start, "end_time": end}
        self._get(
            "/gateway/geographical-stats", "GET geographical-stats", {**window, "limit": "10"}
        )
        self._get("/gateway/top-routes", "GET top-routes", {**window, "limit": "10"})
        self._get("/gateway/client-analytics", "GET client-analytics", window)
        self._get("/gateway/blocking-stats", "GET blocking-stats", {**window, "limit": "10"})

    @task(2)
    def saved_query(self) -> None:
        ids = SAVED.get(self.project) or []
        if ids:
            self._post(f"/gateway/saved-queries/{random.choice(ids)}/run", "POST saved query run")


@events.quitting.add_listener
def _write_counts(environment: Any, **_: Any) -> None:
    if COUNTS_FILE:
        with open(COUNTS_FILE, "w") as out:
            json.dump({"sent": _sent, "x_cache": dict(_cache)}, out)
