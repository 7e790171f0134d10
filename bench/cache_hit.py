"""Benchmark the response cache: ``POST /gateway/analytics`` answered as a HIT vs a MISS.

    .venv/bin/python bench/cache_hit.py --rows 10000000 --repeat 15

Generates ``--rows`` demo rows (30 days, 5 projects) into a throw-away embedded chDB
directory (SQLite for Django's tables, in the same temp dir), with the response cache on
a REAL Redis (``--redis-url``, default ``redis://127.0.0.1:6379/14``) under a key prefix
of this run's own, and the throttle off. Then for the typical dashboard request
(``dashboard 7d/1h by project`` of ``bench/analytics_endpoint.py``), called as BudApp
does — an all-projects API client, ``Authorization: Bearer <key>`` through DRF's test
client, so key lookup, scope, audit row and response are all paid — it runs, after
``--warmup`` discarded rounds, ``--repeat`` interleaved rounds of

* **miss**: ``invalidate_endpoint("analytics")`` (not timed), then one call, which must
  answer ``X-Cache: MISS`` (computes the answer and writes it to Redis);
* **hit**: the same call again, which must answer ``X-Cache: HIT`` with the same bytes.

Targets: hit median <= 5 ms and miss/hit >= 50x. It then prints where a hit's time goes
(timing wrappers around auth, throttle, validation, scope, cache reads, response, audit;
a separate pass of ``--repeat`` hits), the same hit with the production throttles on
(the per-key and per-project defaults on Redis), the same hit with the audit stubbed out
(diagnostic), the floor of the test client + middleware (``GET /healthz``), the disk's
fsync time (a SQLite commit waits for it), the Redis round trips and SQL statements of
one hit, and the machine.
``--profile`` adds a cProfile listing of ``--repeat`` hits. Only this run's keys are
deleted at the end.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from analytics_endpoint import (
    _iso,
    _peak_rss_mib,
    _silence_console_logs,
    _table,
    _Timers,
    bench_queries,
    wait_for_merges,
)

REPO = Path(__file__).resolve().parent.parent
URL = "/gateway/analytics"
QUERY = "dashboard 7d/1h by project"
TARGET_HIT_MS = 5.0
TARGET_SPEEDUP = 50.0
# The production defaults: a per-key ceiling and the per-project fairness rate.
PRODUCTION_THROTTLE = {"client": "30000/min", "project": "1200/min"}


def _setup_django(work_dir: str, redis_url: str, key_prefix: str) -> None:
    os.environ["CLICKHOUSE_EMBEDDED_PATH"] = os.path.join(work_dir, "chdb")
    os.environ["CLICKHOUSE_HOST"] = ""  # always the embedded engine, never a configured server
    os.environ["CLICKHOUSE_RETENTION_DAYS"] = "7300"
    os.environ["DATABASE_URL"] = f"sqlite:///{os.path.join(work_dir, 'db.sqlite3')}"
    os.environ["REDIS_URL"] = redis_url  # the response cache on a real Redis
    os.environ["CACHE_ENABLED"] = "true"
    os.environ["API_THROTTLE_RATE"] = "off"
    os.environ["API_PROJECT_THROTTLE_RATE"] = "off"
    os.environ["LOG_QUERIES"] = "false"
    os.environ["DEBUG_MODE"] = "false"
    os.environ["INPROCESS_JOBS"] = "false"
    os.environ["DJANGO_SETTINGS_MODULE"] = "budmetrics_site.settings"
    sys.path.insert(0, str(REPO))
    import django

    django.setup()

    # This run's own key prefix (settings fix it to "budmetrics"), so the clean-up at the
    # end deletes only this run's keys. override_settings resets the cache handlers.
    from django.conf import settings
    from django.core.cache import cache
    from django.core.cache import caches as caches_handler
    from django.test import override_settings

    caches = {name: dict(config) for name, config in settings.CACHES.items()}
    caches["default"]["KEY_PREFIX"] = key_prefix
    override_settings(CACHES=caches).enable()
    backend = type(caches_handler["default"]).__name__
    if cache.key_prefix != key_prefix or backend != "RedisCache":
        raise SystemExit(f"the cache is not this run's Redis: {backend}, {cache.key_prefix}")


def _check_redis() -> tuple[str, float]:
    """Fail early if Redis is unreachable (the cache would silently degrade to MISS).
    Returns the server version and the median PING round trip in ms."""
    from django_redis import get_redis_connection

    connection = get_redis_connection("default")
    try:
        version = connection.info("server")["redis_version"]
    except Exception as exc:  # any failure: say so and stop
        raise SystemExit(f"Redis unreachable at {os.environ['REDIS_URL']}: {exc}") from exc
    samples = []
    for _ in range(200):
        started = time.perf_counter()
        connection.ping()
        samples.append((time.perf_counter() - started) * 1000)
    return version, statistics.median(samples)


def _call(api: Any, body: dict[str, Any], expected: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    response = api.post(URL, body, format="json")
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise SystemExit(f"{URL} answered {response.status_code}: {response.content[:500]!r}")
    status = response.get("X-Cache")
    if status != expected:
        raise SystemExit(f"{URL} answered X-Cache: {status}, expected {expected}")
    return elapsed, response.content


def measure(api: Any, body: dict[str, Any], repeat: int, warmup: int) -> dict[str, Any]:
    """``warmup`` discarded rounds, then ``repeat`` rounds of one MISS and one HIT."""
    from analytics.cache import invalidate_endpoint

    misses, hits = [], []
    content = b""
    for round_number in range(warmup + repeat):
        invalidate_endpoint("analytics")
        miss_ms, content = _call(api, body, "MISS")
        hit_ms, hit_content = _call(api, body, "HIT")
        if hit_content != content:
            raise SystemExit("a HIT answered different bytes than the MISS before it")
        if round_number >= warmup:
            misses.append(miss_ms)
            hits.append(hit_ms)
    return {
        "miss_ms": statistics.median(misses),
        "hit_ms": statistics.median(hits),
        "miss_min": min(misses),
        "hit_min": min(hits),
        "hit_max": max(hits),
        "content": content,
    }


def hit_breakdown(api: Any, body: dict[str, Any], repeat: int) -> list[tuple[str, float]]:
    """Median ms per component of a HIT (nested labels are part of their parent)."""
    import analytics.access.audit
    import analytics.cache
    import analytics.data_view
    import analytics.endpoints
    from analytics.access.authentication import ApiKeyAuthentication
    from analytics.access.models import ApiClient
    from analytics.access.throttling import ClientRateThrottle
    from analytics.audit_writer import AuditWriter
    from analytics.serializers import AnalyticsRequestSerializer

    timers = _Timers()
    whole = "whole call (test client)"
    components = [
        (whole, None, None),
        ("  auth: ApiKeyAuthentication.authenticate", ApiKeyAuthentication, "authenticate"),
        ("    ApiClient.from_key (cached: Redis GET)", ApiClient, "from_key"),
        ("  throttle: ClientRateThrottle.allow_request", ClientRateThrottle, "allow_request"),
        ("  validation: serializer.is_valid", AnalyticsRequestSerializer, "is_valid"),
        ("  scope: scope_for", analytics.endpoints, "scope_for"),
        ("  cache: cached_answer (key + gets)", analytics.endpoints, "cached_answer"),
        ("    cache_key (hash)", analytics.cache, "cache_key"),
        ("    Redis GET entry + generation (+ unpickle)", analytics.cache, "_get_with_generation"),
        ("  response: json_response (bytes as-is)", analytics.data_view, "json_response"),
        ("  audit: record_query", analytics.access.audit, "record_query"),
        ("    queue the audit row (AuditWriter.add)", AuditWriter, "add"),
    ]
    for label, owner, attribute in components:
        if owner is not None:
            timers.wrap(owner, attribute, label)
    labels = [label for label, _, _ in components]
    try:
        _call(api, body, "HIT")  # warm-up
        timers.current.clear()
        for _ in range(repeat):
            timers.current[whole] = _call(api, body, "HIT")[0]
            timers.next_request(labels)
    finally:
        timers.restore()
    medians = {label: statistics.median(timers.samples[label]) for label in labels}
    rows = [(label, medians[label]) for label in labels]
    top_level = [label for label in labels[1:] if label[:2] == "  " and label[2] != " "]
    rest = medians[whole] - sum(medians[label] for label in top_level)
    rows.append(("  rest: test client, middleware, routing, DRF request/finalize", rest))
    return rows


def round_trips(api: Any, body: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The Redis commands and SQL statements of one HIT."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from redis import Redis

    commands: list[str] = []
    original = Redis.execute_command

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        commands.append(str(args[0]))
        return original(self, *args, **kwargs)

    Redis.execute_command = counting  # type: ignore[method-assign]
    try:
        with CaptureQueriesContext(connection) as queries:
            _call(api, body, "HIT")
    finally:
        Redis.execute_command = original  # type: ignore[method-assign]
    statements = [" ".join(q["sql"].split())[:70] for q in queries.captured_queries]
    return commands, statements


def hit_with_throttle(api: Any, body: dict[str, Any], repeat: int) -> tuple[float, float]:
    """Median ms of a HIT, and of its throttle check, with the production rate on Redis."""
    from django.conf import settings
    from django.test import override_settings

    from analytics.access.throttling import ClientRateThrottle, ProjectRateThrottle

    rest_framework = dict(settings.REST_FRAMEWORK)
    rest_framework["DEFAULT_THROTTLE_RATES"] = {
        **rest_framework["DEFAULT_THROTTLE_RATES"],
        **PRODUCTION_THROTTLE,
    }
    timers = _Timers()
    timers.wrap(ClientRateThrottle, "allow_request", "throttle")
    timers.wrap(ProjectRateThrottle, "allow_request", "throttle")
    hits = []
    try:
        with override_settings(REST_FRAMEWORK=rest_framework):
            _call(api, body, "HIT")
            timers.current.clear()
            for _ in range(repeat):
                hits.append(_call(api, body, "HIT")[0])
                timers.next_request(["throttle"])
    finally:
        timers.restore()
    return statistics.median(hits), statistics.median(timers.samples["throttle"])


def hit_without_audit(api: Any, body: dict[str, Any], repeat: int) -> float:
    """Diagnostic: median ms of a HIT with ``record_query`` stubbed out (no audit row, no
    log line), i.e. what deferring or batching the audit would save."""
    import analytics.access.audit

    original = analytics.access.audit.record_query
    analytics.access.audit.record_query = lambda *args, **kwargs: None
    try:
        _call(api, body, "HIT")
        return statistics.median(_call(api, body, "HIT")[0] for _ in range(repeat))
    finally:
        analytics.access.audit.record_query = original


def fsync_ms(directory: str, repeat: int = 50) -> float:
    """Median ms to write and fsync 4 KiB in ``directory`` (what a SQLite commit waits for)."""
    path = os.path.join(directory, "fsync-probe")
    samples = []
    with open(path, "wb") as probe:
        for _ in range(repeat):
            started = time.perf_counter()
            probe.write(b"x" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
            samples.append((time.perf_counter() - started) * 1000)
    os.remove(path)
    return statistics.median(samples)


def floor_ms(api: Any, repeat: int) -> float:
    """Median ms of ``GET /healthz``: test client + middleware, no DRF, no cache."""
    api.get("/healthz")
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = api.get("/healthz")
        samples.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"/healthz answered {response.status_code}")
    return statistics.median(samples)


def dashboard_view_hits(api: Any, repeat: int) -> tuple[float, float, int, int]:
    """Warm the default dashboard views as the Celery job does, then time reads of one
    active project's ``overview`` view, each of which must be a HIT. Returns the read
    median ms, the warm-up seconds, the views warmed and the active projects."""
    from analytics import cache as response_cache
    from analytics.dashboards import active_projects, warm_dashboards

    now = response_cache.clock()
    projects = active_projects(now)
    if not projects:
        raise SystemExit("no project has traffic in the last DASHBOARD_ACTIVE_HOURS")
    started = time.perf_counter()
    warmed = warm_dashboards(now)
    warm_seconds = time.perf_counter() - started
    url = f"/gateway/dashboards/overview?project_id={projects[0]}"
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = api.get(url)
        samples.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200 or response["X-Cache"] != "HIT":
            raise SystemExit(f"{url} answered {response.status_code} {response['X-Cache']}")
    return statistics.median(samples), warm_seconds, len(warmed), len(projects)


def profile_hits(api: Any, body: dict[str, Any], repeat: int, top: int) -> str:
    _call(api, body, "HIT")
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(repeat):
        _call(api, body, "HIT")
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def _cleanup() -> int:
    """Delete this run's keys (its own prefix) and nothing else."""
    from django.core.cache import cache

    try:
        return cache.delete_pattern("*")
    except Exception as exc:  # noqa: BLE001 - report, do not hide the results
        print(f"warning: could not delete this run's Redis keys: {exc}", file=sys.stderr)
        return -1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=15, help="timed rounds (miss + hit)")
    parser.add_argument("--warmup", type=int, default=2, help="discarded rounds first")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--projects", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile listing")
    parser.add_argument("--profile-top", type=int, default=30)
    args = parser.parse_args()

    work_dir = tempfile.mkdtemp(prefix="budmetrics-bench-cache-hit-")
    key_prefix = f"bench-cache-hit-{uuid.uuid4().hex[:12]}"
    try:
        _setup_django(work_dir, args.redis_url, key_prefix)
        try:
            return _run(args, key_prefix)
        finally:
            _cleanup()
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _run(args: argparse.Namespace, key_prefix: str) -> int:
    import chdb
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from analytics.access.models import ApiClient
    from analytics.demo.generator import table_row_count
    from budmetrics_site.clickhouse.client import get_client

    redis_version, ping_ms = _check_redis()
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
    engine_version = client.query("SELECT version()").result_rows[0][0]

    _, key = ApiClient.create_with_key("bench-cache-hit", all_projects=True)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    _silence_console_logs()
    merge_wait = wait_for_merges(client)

    body = bench_queries(end)[QUERY]
    result = measure(api, body, args.repeat, args.warmup)
    parts = hit_breakdown(api, body, args.repeat)
    throttled_hit_ms, throttle_ms = hit_with_throttle(api, body, args.repeat)
    no_audit_ms = hit_without_audit(api, body, args.repeat)
    healthz_ms = floor_ms(api, args.repeat)
    dashboard_ms, warm_seconds, views_warmed, active = dashboard_view_hits(api, args.repeat)
    disk_fsync_ms = fsync_ms(os.path.dirname(os.environ["CLICKHOUSE_EMBEDDED_PATH"]))
    commands, statements = round_trips(api, body)
    profile = profile_hits(api, body, args.repeat, args.profile_top) if args.profile else ""

    speedup = result["miss_ms"] / result["hit_ms"]
    print(
        f"\nPOST {URL}: response cache on Redis, MISS vs HIT, median of {args.repeat} "
        f"interleaved rounds after {args.warmup} warm-up (targets: hit <= {TARGET_HIT_MS:g} ms, "
        f"miss/hit >= {TARGET_SPEEDUP:g}x)"
    )
    header = [
        "query",
        "rows in table",
        "miss ms",
        "hit ms",
        "speed-up",
        f"hit <= {TARGET_HIT_MS:g} ms",
        f">= {TARGET_SPEEDUP:g}x",
    ]
    row = [
        QUERY,
        f"{stored:,}",
        f"{result['miss_ms']:.1f}",
        f"{result['hit_ms']:.2f}",
        f"{speedup:.0f}x",
        "ok" if result["hit_ms"] <= TARGET_HIT_MS else "MISSED",
        "ok" if speedup >= TARGET_SPEEDUP else "MISSED",
    ]
    print(_table(header, [row]))
    print(
        f"  miss min {result['miss_min']:.1f} ms; hit min {result['hit_min']:.2f} ms, "
        f"max {result['hit_max']:.2f} ms; answer {len(result['content']):,} bytes"
    )

    print(f"\nwhere a HIT's time goes (median ms of {args.repeat} hits, separate pass)")
    print(_table(["component", "ms"], [[label, f"{ms:.2f}"] for label, ms in parts]))
    print()
    context = [
        ("GET /healthz, same client (test client + middleware floor)", f"{healthz_ms:.2f} ms"),
        (
            f"HIT with the production throttles ({PRODUCTION_THROTTLE} on Redis)",
            f"{throttled_hit_ms:.2f} ms (throttle check {throttle_ms:.2f} ms)",
        ),
        ("HIT with record_query stubbed out (diagnostic: no audit)", f"{no_audit_ms:.2f} ms"),
        (
            "GET /gateway/dashboards/overview after warming (HIT)",
            f"{dashboard_ms:.2f} ms (warming {views_warmed} views of {active} active "
            f"projects took {warm_seconds:.1f} s)",
        ),
        ("write + fsync 4 KiB in the temp dir (median of 50)", f"{disk_fsync_ms:.2f} ms"),
        ("Redis PING round trip (median of 200)", f"{ping_ms:.3f} ms"),
        (f"Redis commands of one HIT ({len(commands)})", ", ".join(commands)),
        (f"SQL statements of one HIT ({len(statements)})", ""),
    ]
    width = max(len(k) for k, _ in context)
    for label, value in context:
        print(f"  {label:<{width}}  {value}")
    for statement in statements:
        print(f"    {statement}")

    if profile:
        print(f"\ncProfile, {args.repeat} HITs")
        print(profile)

    print("\nmachine")
    machine = [
        ("cores", str(os.cpu_count())),
        ("platform", platform.platform()),
        ("processor", platform.processor() or platform.machine()),
        ("python", platform.python_version()),
        ("chdb", f"{chdb.__version__} (engine {engine_version})"),
        ("redis", f"{redis_version} at {args.redis_url} (key prefix {key_prefix})"),
        ("django database", "SQLite (temp dir)"),
        ("rows generated", f"{stored:,} in {generate_seconds:.1f} s"),
        ("waited for merges", f"{merge_wait:.1f} s"),
        ("load average (1/5/15 min)", " / ".join(f"{x:.2f}" for x in os.getloadavg())),
        ("peak RSS", f"{_peak_rss_mib():,.0f} MiB"),
    ]
    width = max(len(k) for k, _ in machine)
    for label, value in machine:
        print(f"  {label:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
