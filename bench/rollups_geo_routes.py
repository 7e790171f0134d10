"""Benchmark the geo_15m and routes_15m rollups (issue 11): 30-day geographical-stats and
top-routes from their rollup vs the same request with ``exact=true`` (raw rows), and each
rollup's rows and bytes as a fraction of raw.

    .venv/bin/python bench/rollups_geo_routes.py --rows 2000000 --days 30 --repeat 5

In a throw-away embedded chDB directory (helpers shared with ``bench/rollups.py``) it
times ``generate_traffic`` of ``--insert-rows`` rows with every rollup view attached and,
on an emptied table, without them; writes ``--rows`` rows over ``--days`` days (5
projects) with the views attached; lets merges finish and runs ``OPTIMIZE FINAL`` on the
rollups (the steady state); then, after one warm-up each, takes the median of
``--repeat`` interleaved API calls (cache off) of

    GET /gateway/geographical-stats  (limit 50, the last --days days ending 7 minutes
                                      after the last whole hour: an unaligned edge)
    GET /gateway/top-routes          (limit 10, same range)

answered as usual (``data.meta.source`` must be the rollup) and with ``exact=true``. It
checks both answers agree (counts and tokens exactly, means to 1e-9, percentiles within
210 ms, distinct users within 1 %) and prints one table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rollups import (  # the sibling bench script's helpers
    _generate,
    _iso,
    _setup_django,
    _table,
    get_data,
    insert_throughput,
    storage,
    wait_for_merges,
)

ENDPOINTS = {
    "geographical-stats": ("/gateway/geographical-stats", {"limit": "50"}),
    "top-routes": ("/gateway/top-routes", {"limit": "10"}),
}
SKETCHED = {"p95_response_time", "p99_response_time", "p95_ttft", "unique_users"}


def check_agree(rolled: Any, raw: Any, name: str = "") -> None:
    """Every value of the rollup answer against the raw answer (recursively)."""
    if isinstance(raw, dict):
        assert rolled.keys() == raw.keys(), name
        for key, value in raw.items():
            if key != "meta":
                check_agree(rolled[key], value, key)
    elif isinstance(raw, list):
        assert len(rolled) == len(raw), name
        for a, b in zip(rolled, raw, strict=True):
            check_agree(a, b, name)
    elif raw is None or rolled is None:
        assert rolled == raw, name
    elif name in SKETCHED:
        bound = 0.01 * raw if name == "unique_users" else 210
        assert abs(rolled - raw) <= bound, (name, rolled, raw)
    elif name in ("latitude", "longitude"):
        assert abs(rolled - raw) <= 1e-4, (name, rolled, raw)
    elif isinstance(raw, float):
        assert abs(rolled - raw) <= 1e-9 * max(abs(raw), 1e-12), (name, rolled, raw)
    else:
        assert rolled == raw, (name, rolled, raw)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--insert-rows", type=int, default=500_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    work_dir = tempfile.mkdtemp(prefix="budmetrics-bench-geo-routes-")
    try:
        _setup_django(work_dir)
        return _run(args)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _run(args: argparse.Namespace) -> int:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from analytics.query.rollups import GEO, ROUTES_ROLLUP
    from budmetrics_site.clickhouse.client import get_client

    call_command("migrate", verbosity=0)
    call_command("migrate", database="clickhouse", verbosity=0)
    client = get_client()
    data_end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)

    with_views, without_views = insert_throughput(client, args.insert_rows, args.days, data_end)
    generate_seconds = _generate(args.rows, args.days, data_end, seed=42)
    wait_for_merges(client)
    for rollup in (GEO, ROUTES_ROLLUP):
        client.command(f"OPTIMIZE TABLE {rollup.table} FINAL")
    sizes = {table: (rows, size) for table, rows, size in storage(client)}

    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench")
    api = APIClient()
    api.force_authenticate(user=user)
    end = data_end + timedelta(minutes=7) - timedelta(hours=1)
    window = {"start_time": _iso(end - timedelta(days=args.days)), "end_time": _iso(end)}
    results = []
    for label, (url, extra) in ENDPOINTS.items():
        params = {**window, **extra}
        exact = {**params, "exact": "true"}
        _, rolled = get_data(api, url, params)
        _, raw = get_data(api, url, exact)
        assert rolled["meta"]["source"] != "raw", rolled["meta"]
        assert raw["meta"]["source"] == "raw", raw["meta"]
        check_agree(rolled, raw)
        rollup_ms, raw_ms = [], []
        for _ in range(args.repeat):
            rollup_ms.append(get_data(api, url, params)[0])
            raw_ms.append(get_data(api, url, exact)[0])
        results.append((label, rolled["meta"]["source"], rollup_ms, raw_ms))

    from analytics.query.registry import TABLE

    raw_rows, raw_bytes = sizes[TABLE]
    print(
        f"\ngeo_15m / routes_15m at {raw_rows:,} raw rows over {args.days} days, 5 projects "
        f"({os.cpu_count()} CPUs; median of {args.repeat} after 1 warm-up, cache off)"
    )
    rows: list[list[str]] = []
    for label, source, rollup_ms, raw_ms in results:
        rollup_median, raw_median = statistics.median(rollup_ms), statistics.median(raw_ms)
        rows += [
            [f"{label} {args.days}d, answered by {source} (ms)", f"{rollup_median:.1f}"],
            [f"{label} {args.days}d, exact=true (raw) (ms)", f"{raw_median:.1f}"],
            [f"{label} speed-up (raw / rollup)", f"{raw_median / rollup_median:.1f}x"],
        ]
    for rollup in (GEO, ROUTES_ROLLUP):
        count, size = sizes[rollup.table]
        rows.append(
            [
                f"{rollup.table}: rows / bytes on disk",
                f"{count:,} / {size:,} ({count / raw_rows:.2%} / {size / raw_bytes:.2%} of raw)",
            ]
        )
    rows += [
        ["raw gateway_analytics: rows / bytes on disk", f"{raw_rows:,} / {raw_bytes:,}"],
        [f"insert {args.insert_rows:,} rows with all views (s)", f"{with_views:.2f}"],
        [f"insert {args.insert_rows:,} rows without views (s)", f"{without_views:.2f}"],
        ["insert throughput with / without views", f"{without_views / with_views:.0%}"],
        [f"generate {args.rows:,} rows with views (s)", f"{generate_seconds:.1f}"],
    ]
    print(_table(["measure", "value"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
