"""Benchmark how the rollup overview's cost grows with the range, and what the percentile
adds: the overview request (``1d`` buckets, top 5 models + other) over 1, 3 and ``--days``
minus one days, in Asia/Kolkata and UTC, with and without ``p95_response_time``.

    .venv/bin/python bench/overview_growth.py --rows 10000000 --days 10

In a throw-away embedded chDB directory it writes ``--rows`` rows over ``--days`` days
(5 projects, views attached; 10M rows over 10 days is the per-day density of the issue's
100M rows over 90 days), waits for merges, then times each request through the whole
Django stack (median of ``--repeat`` after one warm-up, cache off) and each ClickHouse
statement it ran, alone. The growth per day of range is what a 90-day request at that
density adds up to; a cost that does not grow with the range is per-request overhead.

``--replicate K`` then copies the series rollup's 15-minute rows K more times, each copy
``--days`` earlier (its chained views fill the coarser tiers), and times the overview over
(K + 1) x ``--days`` - 1 days: a long range of rollup rows at the 100M density without
writing 100M raw rows. Synthetic: raw rows exist only for the last ``--days`` days, so
only the rollup answer is timed there (a raw answer would not be comparable).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import rollups as bench


def _median_ms(call: Callable[[], Any], repeat: int) -> float:
    samples = []
    for _ in range(repeat + 1):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples[1:])


def _measure(api: Any, client: Any, body: dict[str, Any], repeat: int) -> tuple[float, list[float]]:
    """(API ms, ms of each data statement run alone)."""
    import clickhouse_connect.driver.client as driver

    captured: list[tuple[str, Any, Any]] = []
    original = driver.Client.query

    def recording(self: Any, query: Any = None, parameters: Any = None, **kwargs: Any) -> Any:
        captured.append((query, parameters, kwargs.get("settings")))
        return original(self, query, parameters=parameters, **kwargs)

    def post() -> None:
        response = api.post(f"{bench.ANALYTICS_URL}", body, format="json")
        if response.status_code != 200:
            raise SystemExit(
                f"overview answered {response.status_code}: {response.content[:300]!r}"
            )

    driver.Client.query = recording  # type: ignore[method-assign]
    try:
        post()
    finally:
        driver.Client.query = original  # type: ignore[method-assign]
    statements = [c for c in captured if c[0] and "FROM" in c[0]]
    api_ms = _median_ms(post, repeat)
    per_statement = [
        _median_ms(lambda s=s: client.query(s[0], parameters=s[1], settings=s[2]), repeat)
        for s in statements
    ]
    return api_ms, per_statement


def _replicate_series(client: Any, copies: int, days: int) -> None:
    """Copy the series rollup's 15-minute rows ``copies`` times, ``days`` apart, back in
    time; the chained views fill its coarser and day tiers as on any insert."""
    from analytics.query.rollups import DAY_TIERS, FAMILIES, SERIES

    table = SERIES.table
    (low,) = client.query(f"SELECT min(timestamp) FROM {table}").result_rows[0]  # noqa: S608
    source = (
        f"SELECT * FROM {table} WHERE timestamp >= {{low:DateTime('UTC')}} "  # noqa: S608
        f"AND timestamp < {{low:DateTime('UTC')}} + INTERVAL {int(days)} DAY"
    )
    for copy in range(1, copies + 1):
        client.command(
            f"INSERT INTO {table} SELECT * REPLACE "  # noqa: S608 - code constants
            f"(timestamp - INTERVAL {copy * int(days)} DAY AS timestamp) FROM ({source})",
            parameters={"low": low},
        )
    for tier in (*FAMILIES[SERIES.name], *DAY_TIERS[SERIES.name].values()):
        client.command(f"OPTIMIZE TABLE {tier.table} FINAL")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--replicate", type=int, default=0)
    args = parser.parse_args()
    work_dir = tempfile.mkdtemp(prefix="budmetrics-bench-overview-")
    try:
        bench._setup_django(work_dir)
        from analytics.audit_writer import writer

        client = bench.migrated_client()
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        bench._generate(args.rows, args.days, end, seed=bench.SEED)
        bench.wait_for_merges(client)
        api = bench.superuser_api()
        query_end = end - timedelta(minutes=53)  # an unaligned edge, inside the data
        ranges = sorted({1, 3, args.days - 1})
        lines = []
        for zone in ("Asia/Kolkata", "UTC"):
            for with_p95 in (True, False):
                for days in ranges:
                    body = {**bench.overview(query_end, days), "timezone": zone}
                    if not with_p95:
                        body["metrics"] = [m for m in body["metrics"] if m != "p95_response_time"]
                    api_ms, statements = _measure(api, client, body, args.repeat)
                    lines.append(
                        [
                            zone,
                            "yes" if with_p95 else "no",
                            str(days),
                            f"{api_ms:.1f}",
                            " / ".join(f"{ms:.1f}" for ms in statements),
                        ]
                    )
                    print(f"measured {zone} p95={with_p95} {days}d", file=sys.stderr, flush=True)
        if args.replicate:
            _replicate_series(client, args.replicate, args.days)
            days = (args.replicate + 1) * args.days - 1
            for zone in ("Asia/Kolkata", "UTC"):
                body = {**bench.overview(query_end, days), "timezone": zone}
                api_ms, statements = _measure(api, client, body, args.repeat)
                statements_ms = " / ".join(f"{ms:.1f}" for ms in statements)
                lines.append([zone, "yes", f"{days} (synthetic)", f"{api_ms:.1f}", statements_ms])
        print(
            f"\nOverview (1d buckets, top 5 models + other) over {args.rows:,} rows in "
            f"{args.days} days, 5 projects; median of {args.repeat} after a warm-up, cache off"
        )
        header = ["zone", "p95", "days", "API ms", "statements alone, ms"]
        print(bench._table(header, lines))
        writer.flush()
        return 0
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
