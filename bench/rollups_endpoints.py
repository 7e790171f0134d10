"""Benchmark the fixed-shape endpoints' rollups (issue 11): 30-day client-analytics and
blocking-stats answered as usual (from their rollups) beside the same request with
``exact=true`` (raw rows), and each rollup's rows and bytes against raw.

    .venv/bin/python bench/rollups_endpoints.py --rows 1000000 --days 30 --repeat 5

In a throw-away embedded chDB directory (or ``--work-dir``, reused when it already holds
rows) it writes ``--rows`` rows of demo traffic over ``--days`` days (5 projects, seed 7),
waits for merges, runs ``OPTIMIZE FINAL`` on the rollups (the steady state), then times
the median of ``--repeat`` interleaved calls (cache off, one warm-up each) of

    GET /gateway/client-analytics   30 days ending 8 minutes before the data ends
    GET /gateway/blocking-stats     the same range, time_bucket 1d, zone Asia/Kolkata

checking that both answers agree (every number exact, cost and means to 1e-9), and
prints one table.
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

from rollups import (
    _generate,
    _iso,
    _setup_django,
    _table,
    get_data,
    storage,
    wait_for_merges,
)


def _close(a: Any, b: Any, path: str = "") -> None:
    """Equal, floats to 1e-9 relative; page links may differ by their exact=true."""
    if isinstance(b, dict):
        assert a.keys() == b.keys(), path
        for key in b:
            if key not in ("next", "previous", "meta"):
                _close(a[key], b[key], f"{path}.{key}")
    elif isinstance(b, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(b, float) and isinstance(a, float):
        assert abs(a - b) <= 1e-9 * max(abs(b), 1e-12), (path, a, b)
    else:
        assert a == b, (path, a, b)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--work-dir", default="")
    args = parser.parse_args()
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="budmetrics-bench-endpoints-")
    os.makedirs(work_dir, exist_ok=True)
    try:
        _setup_django(work_dir)
        return _run(args)
    finally:
        if not args.work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)


def _run(args: argparse.Namespace) -> int:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from analytics.demo.generator import table_row_count
    from analytics.query.rollups import ROLLUPS
    from budmetrics_site.clickhouse.client import get_client

    call_command("migrate", verbosity=0)
    call_command("migrate", database="clickhouse", verbosity=0)
    client = get_client()
    data_end = datetime(2026, 12, 1, tzinfo=UTC)
    if not table_row_count(client):
        _generate(args.rows, args.days, data_end, seed=7)
    wait_for_merges(client)
    for rollup in ROLLUPS.values():
        client.command(f"OPTIMIZE TABLE {rollup.table} FINAL")
    sizes = storage(client)

    user = get_user_model().objects.filter(username="bench").first()
    user = user or get_user_model().objects.create_superuser("bench", "b@example.com", "b")
    api = APIClient()
    api.force_authenticate(user=user)
    end = data_end - timedelta(minutes=8)
    window = {"start_time": _iso(end - timedelta(days=30)), "end_time": _iso(end)}
    calls = [
        ("client-analytics 30d, 50 clients", "/gateway/client-analytics", window),
        (
            "blocking-stats 30d, 1d Kolkata",
            "/gateway/blocking-stats",
            {**window, "time_bucket": "1d", "timezone": "Asia/Kolkata"},
        ),
    ]
    lines = []
    for label, url, params in calls:
        exact = {**params, "exact": "true"}
        _, rolled = get_data(api, url, params)
        _, raw = get_data(api, url, exact)
        _close(
            {k: v for k, v in rolled.items() if k != "meta"},
            {k: v for k, v in raw.items() if k != "meta"},
        )
        rollup_ms, raw_ms = [], []
        for _ in range(args.repeat):
            rollup_ms.append(get_data(api, url, params)[0])
            raw_ms.append(get_data(api, url, exact)[0])
        a, b = statistics.median(rollup_ms), statistics.median(raw_ms)
        lines += [
            [f"{label}: rollup (ms)", f"{a:.1f} ({rolled['meta']['source']})"],
            [f"{label}: exact=true (ms)", f"{b:.1f} ({raw['meta']['source']})"],
            [f"{label}: speed-up", f"{b / a:.1f}x"],
        ]
    raw_rows, raw_bytes = sizes[0][1], sizes[0][2]
    lines += [
        [
            f"{table}: rows / bytes",
            f"{rows:,} / {size:,} ({rows / raw_rows:.2%} / {size / raw_bytes:.2%} of raw)",
        ]
        for table, rows, size in sizes[1:]
    ]
    lines.append(["raw: rows / bytes", f"{raw_rows:,} / {raw_bytes:,}"])
    print(
        f"\nEndpoint rollups at {raw_rows:,} raw rows over {args.days} days, 5 projects "
        f"({os.cpu_count()} CPUs; median of {args.repeat} after 1 warm-up, cache off)"
    )
    print(_table(["measure", "value"], lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
