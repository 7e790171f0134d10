"""Benchmark the geo, top-routes and client-analytics endpoints against their own SQL.

    .venv/bin/python bench/traffic_endpoints.py --rows 10000000 --repeat 7

Generates ``--rows`` demo rows (``generate_traffic``: 30 days, 5 projects, seed 1) into a
throw-away embedded chDB directory (SQLite for Django's own tables), then for each endpoint
over the whole 30-day range measures, after one warm-up, the median latency of

* the API through DRF's test client as a force-authenticated superuser (the whole Django
  stack: auth, validation, scope, query, shaping, response serializer, audit row, JSON);
* the very SQL statement(s) that request runs, printed by the same builders with the same
  parameters, sent through the runner (same settings and row conversion).

API and SQL samples are interleaved so drift affects both. Target: API <= 1.3 x SQL. The
response cache is off for these samples (each answer must say ``X-Cache: BYPASS``); a last
column gives the median of the same request answered from the cache (local memory here;
``cache_hit.py`` measures hits on Redis).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.3


def _setup_django(work_dir: str) -> None:
    os.environ["CLICKHOUSE_EMBEDDED_PATH"] = os.path.join(work_dir, "chdb")
    os.environ["CLICKHOUSE_HOST"] = ""  # always the embedded engine
    os.environ["CLICKHOUSE_RETENTION_DAYS"] = "7300"
    os.environ["DATABASE_URL"] = f"sqlite:///{os.path.join(work_dir, 'db.sqlite3')}"
    os.environ["REDIS_URL"] = ""  # local-memory cache for the throttle
    os.environ["API_THROTTLE_RATE"] = "off"
    os.environ["API_PROJECT_THROTTLE_RATE"] = "off"
    os.environ["CACHE_ENABLED"] = "false"  # measure computing answers; hits separately
    os.environ["LOG_QUERIES"] = "false"
    os.environ["DJANGO_SETTINGS_MODULE"] = "budmetrics_site.settings"
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


def _silence_logs() -> None:
    """Log records are still formatted (production cost) but written nowhere."""
    import logging

    sink = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sink)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _cases(start: datetime, end: datetime) -> list[dict[str, Any]]:
    """(name, url, query params, direct-SQL runner) per endpoint, as a superuser sees it."""
    from analytics.query.planner import plan
    from analytics.query.printer import print_plan
    from analytics.query.runner import run
    from analytics.query.scope import ProjectScope
    from analytics.query.tree import Window
    from analytics.routes_clients.queries import (
        client_analytics_select,
        top_routes_query,
    )
    from analytics.routes_clients.serializers import (
        ClientAnalyticsQuerySerializer,
        TopRoutesQuerySerializer,
    )
    from geo.queries import geo_stats_query
    from geo.serializers import GeoStatsQuerySerializer

    window_params = {"start_time": _iso(start), "end_time": _iso(end)}

    def validated(serializer_class: type, params: dict[str, str]) -> tuple[dict, Window]:
        serializer = serializer_class(data=params)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        window = Window(ProjectScope.all_projects(), data["start_time"], data["end_time"])
        return data, window

    def geo_sql(params: dict[str, str]) -> Callable[[], Any]:
        data, window = validated(GeoStatsQuerySerializer, params)
        printed = print_plan(
            plan(geo_stats_query(window, limit=data["limit"], order_by=data["order_by"]))
        )
        return lambda: run(printed, max_rows=3 * data["limit"] + 1)

    def routes_sql(params: dict[str, str]) -> Callable[[], Any]:
        data, window = validated(TopRoutesQuerySerializer, params)
        printed = print_plan(
            plan(top_routes_query(window, limit=data["limit"], order_by=data["order_by"]))
        )
        return lambda: run(printed, max_rows=data["limit"])

    def clients_sql(params: dict[str, str]) -> Callable[[], Any]:
        data, window = validated(ClientAnalyticsQuerySerializer, params)
        page, _ = client_analytics_select(
            window, limit=data["limit"], offset=data["offset"], order_by=data["order_by"]
        )
        printed = print_plan(plan(page))
        return lambda: run(printed, max_rows=data["limit"] + 1)

    return [
        {"name": "geographical-stats", "url": "/gateway/geographical-stats",
         "params": window_params, "sql": geo_sql},
        {"name": "top-routes", "url": "/gateway/top-routes",
         "params": window_params, "sql": routes_sql},
        {"name": "client-analytics", "url": "/gateway/client-analytics",
         "params": window_params, "sql": clients_sql},
    ]  # fmt: skip


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return (time.perf_counter() - started) * 1000, result


def _cache_hit_median(api: Any, case: dict[str, Any], repeat: int) -> float:
    """The same request answered from the (local-memory) response cache: one MISS to
    store it, then ``repeat`` HITs."""
    from django.test import override_settings

    with override_settings(CACHE_ENABLED=True):
        first = api.get(case["url"], case["params"])
        assert first["X-Cache"] == "MISS", first["X-Cache"]
        samples = []
        for _ in range(repeat):
            elapsed, response = _timed(lambda: api.get(case["url"], case["params"]))
            assert response["X-Cache"] == "HIT", response["X-Cache"]
            samples.append(elapsed)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()

    work_dir = tempfile.mkdtemp(prefix="budmetrics-bench-traffic-")
    try:
        _setup_django(work_dir)
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from rest_framework.test import APIClient

        call_command("migrate", database="default", verbosity=0)
        call_command("migrate", database="clickhouse", verbosity=0)
        end = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)
        started = time.perf_counter()
        call_command(
            "generate_traffic",
            rows=args.rows,
            days=30,
            projects=5,
            seed=1,
            end=_iso(end - timedelta(minutes=1)),
            verbosity=0,
        )
        generated_s = time.perf_counter() - started
        _silence_logs()
        user = get_user_model().objects.create_superuser("bench", "bench@example.com", "x")
        api = APIClient()
        api.force_authenticate(user)

        start = end - timedelta(days=30)
        results = []
        for case in _cases(start, end):
            run_sql = case["sql"](case["params"])
            response = api.get(case["url"], case["params"])  # warm-up (also parses UAs once)
            if response.status_code != 200:
                raise SystemExit(
                    f"{case['url']}: {response.status_code} {response.content[:300]!r}"
                )
            run_sql()
            api_ms, sql_ms = [], []
            for _ in range(args.repeat):
                elapsed, response = _timed(lambda c=case: api.get(c["url"], c["params"]))
                assert response.status_code == 200
                assert response["X-Cache"] == "BYPASS", response["X-Cache"]
                api_ms.append(elapsed)
                elapsed, _ = _timed(run_sql)
                sql_ms.append(elapsed)
            hit_ms = _cache_hit_median(api, case, args.repeat)
            results.append(
                (case["name"], statistics.median(api_ms), statistics.median(sql_ms), hit_ms)
            )

        print(f"\n{args.rows:,} rows, 30-day range, median of {args.repeat} "
              f"(generated in {generated_s:.0f}s, {os.cpu_count()} CPUs)")  # fmt: skip
        header = (
            f"{'endpoint':<22}{'rows':>14}{'API ms':>10}{'SQL ms':>10}{'ratio':>8}"
            f"{'target':>8}{'API ms, cache hit':>19}"
        )
        print(header)
        print("-" * len(header))
        for name, api_median, sql_median, hit_median in results:
            ratio = api_median / sql_median
            flag = "ok" if ratio <= TARGET_RATIO else "MISSED"
            print(
                f"{name:<22}{args.rows:>14,}{api_median:>10.1f}{sql_median:>10.1f}"
                f"{ratio:>8.2f}{flag:>8}{hit_median:>19.2f}"
            )
    finally:
        if args.keep:
            print(f"kept {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
