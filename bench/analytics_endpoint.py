"""Benchmark ``POST /gateway/analytics`` against the same SQL run directly on the engine.

    .venv/bin/python bench/analytics_endpoint.py --rows 10000000 --repeat 7

Generates ``--rows`` demo rows (30 days, 5 projects) into a throw-away embedded chDB
directory, then for two queries

* ``dashboard``: 7 days, 1h buckets, total_requests, error_rate, avg_response_time,
  p95_response_time, total_tokens, grouped by project_id;
* ``top_models``: 30 days, 1d buckets, grouped by model_name, top_n=5 with include_other;

measures, after one warm-up each, the median latency of the API call through DRF's test
client (the whole Django stack: middleware, auth, validation, audit row, JSON rendering)
and the median of the very SQL statements that call runs (ranking, main, bucket list —
printed by ``analytics.query`` from the same ``AnalyticsQuery``) sent straight to the
clickhouse-connect client with the same settings, their times summed per iteration.
Target: API <= 1.3 x direct SQL.

It then prints where the API's time goes (median per component over ``--repeat`` calls),
peak RSS and the machine. ``--profile`` adds a cProfile listing of the API calls.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import logging
import os
import platform
import pstats
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
URL = "/gateway/analytics"
TARGET_RATIO = 1.3


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def bench_queries(end: datetime) -> dict[str, dict[str, Any]]:
    """The two request bodies, as BudApp would send them."""
    return {
        "dashboard 7d/1h by project": {
            "start_time": _iso(end - timedelta(days=7)),
            "end_time": _iso(end),
            "time_bucket": "1h",
            "metrics": [
                "total_requests",
                "error_rate",
                "avg_response_time",
                "p95_response_time",
                "total_tokens",
            ],
            "group_by": ["project_id"],
        },
        "30d/1d top 5 models+other": {
            "start_time": _iso(end - timedelta(days=30)),
            "end_time": _iso(end),
            "time_bucket": "1d",
            "metrics": ["total_requests", "error_rate", "avg_response_time", "total_tokens"],
            "group_by": ["model_name"],
            "top_n": 5,
            "include_other": True,
        },
    }


def _setup_django(work_dir: str) -> None:
    os.environ["CLICKHOUSE_EMBEDDED_PATH"] = os.path.join(work_dir, "chdb")
    os.environ["CLICKHOUSE_HOST"] = ""  # always the embedded engine, never a configured server
    os.environ["CLICKHOUSE_RETENTION_DAYS"] = "7300"
    os.environ["DATABASE_URL"] = f"sqlite:///{os.path.join(work_dir, 'db.sqlite3')}"
    os.environ["REDIS_URL"] = ""  # local-memory cache for the throttle
    os.environ["LOG_QUERIES"] = "false"
    os.environ["DEBUG_MODE"] = "false"
    # The comparison is of computed answers: the response cache is off (see measure_cached).
    os.environ["CACHE_ENABLED"] = "false"
    os.environ["DJANGO_SETTINGS_MODULE"] = "budmetrics_site.settings"
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


def _silence_console_logs() -> None:
    """Keep log records being formatted (production cost) but write them nowhere, so the
    bench's own output stays readable."""
    sink = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sink)


def _analytics_query(body: dict[str, Any]) -> Any:
    """The ``AnalyticsQuery`` the view builds for ``body`` as a superuser (all projects)."""
    from analytics.query import AnalyticsQuery
    from analytics.query.scope import ProjectScope
    from analytics.serializers import AnalyticsRequestSerializer, pop_project_filter

    serializer = AnalyticsRequestSerializer(data=pop_project_filter(dict(body)))
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    requested = data["project_ids"]
    scope = ProjectScope.only(requested) if requested else ProjectScope.all_projects()
    return AnalyticsQuery.from_validated(data, scope)


def direct_statements(query: Any) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(name, sql, params, settings) of every statement ``run_analytics`` sends for
    ``query``, in order. The ranking runs once here so the main query gets its groups."""
    from django.conf import settings

    from analytics.query.planner import plan
    from analytics.query.printer import print_plan
    from analytics.query.series import bucket_list, main_select, ranking_select, summary_select
    from budmetrics_site.clickhouse.client import get_client, read_settings

    def printed(tree: Any) -> Any:
        return print_plan(plan(tree))

    statements = []
    top_groups = None
    if query.top_n and query.group_by:
        ranking = printed(ranking_select(query))
        statements.append(("ranking", ranking.sql, ranking.params, read_settings()))
        rows = get_client().query(ranking.sql, parameters=ranking.params).result_rows
        ranked = [tuple(str(v) for v in row[: len(query.group_by)]) for row in rows]
        top_groups = ranked[: query.top_n]
    main = printed(main_select(query, top_groups))
    limit = settings.MAX_RESULT_SIZE
    statements.append(("main", main.sql, main.params, read_settings(limit * 2 + 2)))
    if query.fill_gaps:
        buckets = printed(bucket_list(query))
        statements.append(("bucket list", buckets.sql, buckets.params, read_settings()))
    if query.compare_previous:
        span = query.end - query.start
        previous = printed(summary_select(query, query.start - span, query.start))
        statements.append(("previous", previous.sql, previous.params, read_settings()))
    return statements


def _run_direct(client: Any, statements: list) -> tuple[float, dict[str, float]]:
    """Run every statement once on the raw client: total ms and ms per statement."""
    per_statement = {}
    for name, sql, params, query_settings in statements:
        started = time.perf_counter()
        result = client.query(sql, parameters=params, settings=query_settings)
        result.result_rows  # noqa: B018 - the rows, as the runner reads them
        per_statement[name] = (time.perf_counter() - started) * 1000
    return sum(per_statement.values()), per_statement


def _call_api(api: Any, body: dict[str, Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    response = api.post(URL, body, format="json")
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise SystemExit(f"{URL} answered {response.status_code}: {response.content[:500]!r}")
    if response.get("X-Cache", "BYPASS") != "BYPASS":
        raise SystemExit(f"{URL} answered from its cache (X-Cache: {response['X-Cache']})")
    return elapsed, response


def measure_cached(api: Any, body: dict[str, Any], repeat: int) -> float | None:
    """Median ms of the same call answered from the response cache (None if no hit)."""
    from django.core.cache import cache
    from django.test import override_settings

    cache.clear()
    samples = []
    with override_settings(CACHE_ENABLED=True):
        api.post(URL, body, format="json")  # fills the cache
        for _ in range(repeat):
            started = time.perf_counter()
            response = api.post(URL, body, format="json")
            samples.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200 or response.get("X-Cache") != "HIT":
                return None
    cache.clear()
    return statistics.median(samples)


def measure(api: Any, client: Any, body: dict[str, Any], repeat: int) -> dict[str, Any]:
    """One warm-up of each side, then ``repeat`` rounds of one API call followed by one
    direct run of its statements (interleaved, so drift hits both sides alike)."""
    statements = direct_statements(_analytics_query(body))
    _, response = _call_api(api, body)
    payload = response.json()
    _run_direct(client, statements)
    api_samples, direct_samples = [], []
    per_statement: dict[str, list[float]] = defaultdict(list)
    for _ in range(repeat):
        api_samples.append(_call_api(api, body)[0])
        total, parts = _run_direct(client, statements)
        direct_samples.append(total)
        for name, ms in parts.items():
            per_statement[name].append(ms)
    return {
        "api_ms": statistics.median(api_samples),
        "direct_ms": statistics.median(direct_samples),
        "api_min": min(api_samples),
        "direct_min": min(direct_samples),
        "per_statement": {k: statistics.median(v) for k, v in per_statement.items()},
        "payload": payload,
    }


def wait_for_merges(client: Any, timeout: float = 300.0) -> float:
    """Let background merges of the fresh inserts finish, so they do not compete with
    the measurements for the CPU. Returns the seconds waited."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        running = client.query("SELECT count() FROM system.merges").result_rows[0][0]
        if not running:
            break
        time.sleep(0.5)
    return time.perf_counter() - started


# --- where the API time goes ---------------------------------------------------------------


class _Timers:
    """Wrap named callables so each call adds its wall time to a per-request total."""

    def __init__(self) -> None:
        self.current: dict[str, float] = defaultdict(float)
        self.samples: dict[str, list[float]] = defaultdict(list)
        self._undo: list[Callable[[], None]] = []

    def wrap(self, owner: Any, attribute: str, label: str) -> None:
        original = getattr(owner, attribute)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.current[label] += (time.perf_counter() - started) * 1000

        setattr(owner, attribute, timed)
        self._undo.append(lambda: setattr(owner, attribute, original))

    def next_request(self, labels: list[str]) -> None:
        for label in labels:
            self.samples[label].append(self.current.get(label, 0.0))
        self.current.clear()

    def restore(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()


def breakdown(api: Any, body: dict[str, Any], repeat: int) -> list[tuple[str, float]]:
    """Median ms per component of one API call (components overlap as nested: see labels)."""
    from rest_framework.renderers import JSONRenderer

    import analytics.access.audit
    import analytics.endpoints
    import analytics.query.runner
    from analytics.serializers import AnalyticsRequestSerializer

    timers = _Timers()
    components = [
        ("whole call (test client)", None, None),
        ("  view: serializer.is_valid", AnalyticsRequestSerializer, "is_valid"),
        ("  view: run_analytics", analytics.endpoints, "run_analytics"),
        ("    runner.run (driver + engine)", analytics.query.runner, "run"),
        ("  audit: record_query (DB insert + log)", analytics.access.audit, "record_query"),
        ("  JSONRenderer.render", JSONRenderer, "render"),
    ]
    for label, owner, attribute in components:
        if owner is not None:
            timers.wrap(owner, attribute, label)
    labels = [label for label, _, _ in components]
    try:
        api.post(URL, body, format="json")  # warm-up
        timers.current.clear()
        for _ in range(repeat):
            started = time.perf_counter()
            api.post(URL, body, format="json")
            timers.current[labels[0]] = (time.perf_counter() - started) * 1000
            timers.next_request(labels)
    finally:
        timers.restore()
    medians = {label: statistics.median(timers.samples[label]) for label in labels}
    rows = [(label, medians[label]) for label in labels]
    assembly = medians["  view: run_analytics"] - medians["    runner.run (driver + engine)"]
    rows.insert(4, ("    Python assembly (run_analytics - runner.run)", assembly))
    accounted = sum(
        medians[label]
        for label in labels[1:]
        if label.startswith("  ") and not label.startswith("    ")
    )
    rows.append(("  rest (middleware, auth, throttle, routing)", medians[labels[0]] - accounted))
    return rows


def profile_api(api: Any, body: dict[str, Any], repeat: int, top: int) -> str:
    api.post(URL, body, format="json")
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(repeat):
        api.post(URL, body, format="json")
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("cumulative")
    stats.print_stats(top)
    return out.getvalue()


# --- report --------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    lines = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    ]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join(lines)


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / 1024 if sys.platform == "darwin" else peak / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per measurement")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--projects", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--profile", action="store_true", help="also print a cProfile listing")
    parser.add_argument("--profile-top", type=int, default=30)
    args = parser.parse_args()

    work_dir = tempfile.mkdtemp(prefix="budmetrics-bench-analytics-")
    try:
        _setup_django(work_dir)
        return _run(args)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _run(args: argparse.Namespace) -> int:
    import chdb
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from analytics.demo.generator import table_row_count
    from budmetrics_site.clickhouse.client import get_client

    call_command("migrate", verbosity=0)
    call_command("migrate", database="clickhouse", verbosity=0)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    started = time.perf_counter()
    call_command(
        "generate_traffic",
        rows=args.rows,
        days=args.days,
        projects=args.projects,
        seed=args.seed,
        end=_iso(end),
        verbosity=0,
    )
    generate_seconds = time.perf_counter() - started
    client = get_client()
    stored = table_row_count(client)
    assert stored == args.rows, f"expected {args.rows} rows, table has {stored}"
    rss_after_generate = _peak_rss_mib()
    engine_version = client.query("SELECT version()").result_rows[0][0]

    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench")
    api = APIClient()
    api.force_authenticate(user=user)
    _silence_console_logs()

    merge_wait = wait_for_merges(client)

    results = []
    breakdowns = {}
    profiles = {}
    for name, body in bench_queries(end).items():
        measured = measure(api, client, body, args.repeat)
        payload = measured.pop("payload")
        meta = payload["data"]["meta"]
        results.append(
            {
                **measured,
                "name": name,
                "ratio": measured["api_ms"] / measured["direct_ms"],
                "points": len(payload["data"]["time_series"]),
                "rows_read": meta["rows_read"],
                "cached_ms": measure_cached(api, body, args.repeat),
            }
        )
        breakdowns[name] = breakdown(api, body, args.repeat)
        if args.profile:
            profiles[name] = profile_api(api, body, args.repeat, args.profile_top)

    print(
        f"\nPOST {URL}: API vs direct SQL, median of {args.repeat} after 1 warm-up "
        f"(target ratio <= {TARGET_RATIO})"
    )
    header = ["query", "rows in table", "API ms", "direct SQL ms", "ratio", "target"]
    rows = [
        [
            r["name"],
            f"{stored:,}",
            f"{r['api_ms']:.1f}",
            f"{r['direct_ms']:.1f}",
            f"{r['ratio']:.2f}",
            "ok" if r["ratio"] <= TARGET_RATIO else "MISSED",
        ]
        for r in results
    ]
    print(_table(header, rows))
    print()
    detail_header = [
        "query",
        "direct SQL ms per statement (median)",
        "API ms, cache hit",
        "points",
        "meta.rows_read",
        "API min ms",
        "SQL min ms",
    ]
    detail = [
        [
            r["name"],
            " + ".join(f"{k} {v:.1f}" for k, v in r["per_statement"].items()),
            "n/a" if r["cached_ms"] is None else f"{r['cached_ms']:.1f}",
            f"{r['points']:,}",
            f"{r['rows_read']:,}",
            f"{r['api_min']:.1f}",
            f"{r['direct_min']:.1f}",
        ]
        for r in results
    ]
    print(_table(detail_header, detail))

    for name, parts in breakdowns.items():
        print(f"\nwhere the API time goes: {name} (median ms of {args.repeat} calls)")
        print(_table(["component", "ms"], [[label, f"{ms:.1f}"] for label, ms in parts]))

    for name, text in profiles.items():
        print(f"\ncProfile, {args.repeat} API calls: {name}")
        print(text)

    print("\nmachine")
    machine = [
        ("cores", str(os.cpu_count())),
        ("platform", platform.platform()),
        ("processor", platform.processor() or platform.machine()),
        ("python", platform.python_version()),
        ("chdb", f"{chdb.__version__} (engine {engine_version})"),
        ("rows generated", f"{stored:,} in {generate_seconds:.1f} s"),
        ("waited for merges", f"{merge_wait:.1f} s"),
        ("load average (1/5/15 min)", " / ".join(f"{x:.2f}" for x in os.getloadavg())),
        ("peak RSS after generating", f"{rss_after_generate:,.0f} MiB"),
        ("peak RSS at end", f"{_peak_rss_mib():,.0f} MiB"),
    ]
    width = max(len(k) for k, _ in machine)
    for key, value in machine:
        print(f"  {key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
