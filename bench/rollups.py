"""Benchmark rollups (issue 11): the overview request from a rollup vs forced raw, insert
throughput with and without the views, and rollup storage as a fraction of raw.

    .venv/bin/python bench/rollups.py --rows 10000000 --repeat 5

In a throw-away embedded chDB directory it first times ``generate_traffic`` of
``--insert-rows`` rows with the rollup views attached and, on an emptied table, without
them (views dropped, then re-created); then it writes ``--rows`` rows over ``--days``
days (5 projects) with the views attached and measures, after one warm-up each, the
median of ``--repeat`` interleaved API calls (cache off) of the overview request

    90 days (ending 7 minutes after the last whole hour: an unaligned edge), 1d buckets,
    zone Asia/Kolkata, total_requests, error_rate, avg_response_time, p95_response_time,
    total_tokens, total_cost, grouped by model_name, top 5 + other

answered as usual (``meta.source`` must be the rollup) and with ``"exact": true`` (raw).
It checks that both answers agree (counts and tokens exactly, cost to 1e-9, p95 within
its bound) and prints one table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
URL = "/gateway/analytics"


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def overview(end: datetime, days: int) -> dict[str, Any]:
    return {
        "start_time": _iso(end - timedelta(days=days)),
        "end_time": _iso(end),
        "time_bucket": "1d",
        "timezone": "Asia/Kolkata",
        "metrics": [
            "total_requests",
            "error_rate",
            "avg_response_time",
            "p95_response_time",
            "total_tokens",
            "total_cost",
        ],
        "group_by": ["model_name"],
        "top_n": 5,
        "include_other": True,
    }


def _setup_django(work_dir: str) -> None:
    os.environ["CLICKHOUSE_EMBEDDED_PATH"] = os.path.join(work_dir, "chdb")
    os.environ["CLICKHOUSE_HOST"] = ""  # always the embedded engine
    os.environ["CLICKHOUSE_RETENTION_DAYS"] = "7300"
    os.environ["DATABASE_URL"] = f"sqlite:///{os.path.join(work_dir, 'db.sqlite3')}"
    os.environ["REDIS_URL"] = ""
    os.environ["LOG_QUERIES"] = "false"
    os.environ["DEBUG_MODE"] = "false"
    os.environ["CACHE_ENABLED"] = "false"
    # generate_traffic runs under QUERY_TIMEOUT too: a 100k-row batch spread over 90 days
    # feeds the view ~100k rollup rows, which on a busy 2-core machine passes 30 s.
    os.environ.setdefault("QUERY_TIMEOUT", "900")
    os.environ["DJANGO_SETTINGS_MODULE"] = "budmetrics_site.settings"
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


def _generate(rows: int, days: int, end: datetime, seed: int) -> float:
    from django.core.management import call_command

    started = time.perf_counter()
    call_command(
        "generate_traffic",
        rows=rows,
        days=days,
        projects=5,
        seed=seed,
        end=_iso(end),
        verbosity=0,
    )
    return time.perf_counter() - started


def _truncate_all(client: Any) -> None:
    from analytics.query.registry import TABLE
    from analytics.query.rollups import ROLLUPS

    client.command(f"TRUNCATE TABLE {TABLE}")
    for rollup in ROLLUPS.values():
        client.command(f"TRUNCATE TABLE {rollup.table}")


def insert_throughput(client: Any, rows: int, days: int, end: datetime) -> tuple[float, float]:
    """Seconds to generate ``rows`` with the views attached, then without them."""
    from django.conf import settings

    from analytics import schema
    from analytics.query.rollups import ROLLUPS

    options = schema.current_options()
    with_views = _generate(rows, days, end, seed=7)
    _truncate_all(client)
    for rollup in ROLLUPS.values():
        client.command(f"DROP VIEW {schema.rollup_view_name(rollup)}")
    try:
        without_views = _generate(rows, days, end, seed=7)
    finally:
        for rollup in ROLLUPS.values():
            for statement in schema.create_rollup_statements(
                options, rollup, settings.ROLLUP_RETENTION_DAYS
            ):
                client.command(statement)
    _truncate_all(client)
    return with_views, without_views


def storage(client: Any) -> list[tuple[str, int, int]]:
    """(table, rows, bytes on disk) of the raw table and each rollup, active parts."""
    from analytics.query.registry import TABLE
    from analytics.query.rollups import ROLLUPS

    out = []
    for table in (TABLE, *(r.table for r in ROLLUPS.values())):
        rows, size = client.query(
            "SELECT sum(rows), sum(bytes_on_disk) FROM system.parts "
            "WHERE active AND database = currentDatabase() AND table = {t:String}",
            parameters={"t": table},
        ).result_rows[0]
        out.append((table, int(rows), int(size)))
    return out


def wait_for_merges(client: Any, timeout: float = 600.0) -> None:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if not client.query("SELECT count() FROM system.merges").result_rows[0][0]:
            return
        time.sleep(0.5)


def _call(api: Any, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    response = api.post(URL, body, format="json")
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise SystemExit(f"{URL} answered {response.status_code}: {response.content[:500]!r}")
    return elapsed, response.json()["data"]


def check_agree(rolled: dict[str, Any], raw: dict[str, Any]) -> None:
    """The rollup answer equals the raw one (exact metrics) or is within the p95 bound."""
    pairs = list(zip(rolled["time_series"], raw["time_series"], strict=True))
    pairs.append(({"metrics": rolled["summary"]}, {"metrics": raw["summary"]}))
    for a, b in pairs:
        for name, value in b["metrics"].items():
            got = a["metrics"][name]
            if value is None or name == "p95_response_time":
                assert (got is None) == (value is None), name
                if value is not None:
                    assert got <= value * 1.01 + 1, (name, got, value)
            elif isinstance(value, float):
                assert abs(got - value) <= 1e-9 * max(abs(value), 1e-12), (name, got, value)
            else:
                assert got == value, (name, got, value)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--insert-rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    work_dir = tempfile.mkdtemp(prefix="budmetrics-bench-rollups-")
    try:
        _setup_django(work_dir)
        return _run(args)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _run(args: argparse.Namespace) -> int:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from analytics.query.rollups import ROLLUPS
    from budmetrics_site.clickhouse.client import get_client

    call_command("migrate", verbosity=0)
    call_command("migrate", database="clickhouse", verbosity=0)
    client = get_client()
    data_end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)

    with_views, without_views = insert_throughput(client, args.insert_rows, args.days, data_end)
    generate_seconds = _generate(args.rows, args.days, data_end, seed=42)
    wait_for_merges(client)
    unmerged = storage(client)
    # The steady state: background merges collapse a bucket's rows from several inserts
    # into one per key.
    started = time.perf_counter()
    for rollup in ROLLUPS.values():
        client.command(f"OPTIMIZE TABLE {rollup.table} FINAL")
    optimize_seconds = time.perf_counter() - started
    sizes = storage(client)

    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench")
    api = APIClient()
    api.force_authenticate(user=user)
    body = overview(data_end + timedelta(minutes=7) - timedelta(hours=1), args.days)
    label = f"overview {args.days}d/1d Kolkata top5+other"
    exact_body = {**body, "exact": True}
    _, rolled = _call(api, body)
    _, raw = _call(api, exact_body)
    assert rolled["meta"]["source"] != "raw", rolled["meta"]
    assert raw["meta"]["source"] == "raw", raw["meta"]
    check_agree(rolled, raw)
    rollup_ms, raw_ms = [], []
    for _ in range(args.repeat):
        rollup_ms.append(_call(api, body)[0])
        raw_ms.append(_call(api, exact_body)[0])
    rollup_median, raw_median = statistics.median(rollup_ms), statistics.median(raw_ms)

    raw_rows, raw_bytes = sizes[0][1], sizes[0][2]
    print(
        f"\nRollups at {raw_rows:,} raw rows over {args.days} days, 5 projects "
        f"({os.cpu_count()} CPUs; median of {args.repeat} after 1 warm-up, cache off)"
    )
    print(
        _table(
            ["measure", "value"],
            [
                [f"{label}, rollup (ms)", f"{rollup_median:.1f}"],
                ["same, exact: true (raw) (ms)", f"{raw_median:.1f}"],
                ["speed-up (raw / rollup)", f"{raw_median / rollup_median:.1f}x"],
                ["meta.source", rolled["meta"]["source"]],
                [f"insert {args.insert_rows:,} rows with views (s)", f"{with_views:.2f}"],
                [f"insert {args.insert_rows:,} rows without views (s)", f"{without_views:.2f}"],
                ["insert throughput with / without views", f"{without_views / with_views:.0%}"],
                [f"generate {args.rows:,} rows with views (s)", f"{generate_seconds:.1f}"],
                *[
                    [
                        f"{table}: rows / bytes on disk",
                        f"{rows:,} / {size:,} "
                        f"({rows / raw_rows:.2%} / {size / raw_bytes:.2%} of raw)",
                    ]
                    for table, rows, size in sizes[1:]
                ],
                ["raw gateway_analytics: rows / bytes on disk", f"{raw_rows:,} / {raw_bytes:,}"],
                *[
                    [f"{table}: rows before OPTIMIZE FINAL", f"{rows:,}"]
                    for table, rows, _ in unmerged[1:]
                ],
                ["OPTIMIZE FINAL of the rollups (s)", f"{optimize_seconds:.1f}"],
            ],
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
