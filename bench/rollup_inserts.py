"""Benchmark what each rollup view costs on insert: ``generate_traffic`` throughput with no
view, with every view, with each family's views alone and with the families' base (15-minute)
views only.

    .venv/bin/python bench/rollup_inserts.py --rows 1000000 --repeat 2

In a throw-away embedded chDB directory, for each configuration it drops the views not in
it, writes ``--rows`` rows (over ``--days`` days, 5 projects, the same seed every time) into
emptied tables, and times it; after one warm-up, configurations are interleaved
``--repeat`` times and the median taken. A view's cost grows with the rollup rows a batch
makes, i.e. with how thinly the rows spread over time: the default, 1M rows in one day, is
the density of the issue's 100M rows over 90 days; ``--days 90`` is the demo's density. Prints one table: seconds, rows/s and throughput relative to no views.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import rollups as bench  # noqa: E402 - the sibling benchmark's helpers


def _configurations() -> dict[str, tuple[str, ...]]:
    from analytics.query.rollups import FAMILIES, ROLLUPS

    configurations: dict[str, tuple[str, ...]] = {"no views": ()}
    configurations["base views only"] = tuple(chain[0].name for chain in FAMILIES.values())
    for family, chain in FAMILIES.items():
        configurations[f"{family} family"] = tuple(tier.name for tier in chain)
    configurations["every view"] = tuple(ROLLUPS)
    return configurations


def _attach_only(client: object, names: tuple[str, ...]) -> None:
    from django.conf import settings

    from analytics import schema
    from analytics.query.rollups import ROLLUPS

    options = schema.current_options()
    for rollup in ROLLUPS.values():
        client.command(f"DROP VIEW IF EXISTS {schema.rollup_view_name(rollup)}")  # type: ignore[attr-defined]
    for name in names:
        statements = schema.create_rollup_statements(
            options, ROLLUPS[name], settings.ROLLUP_RETENTION_DAYS
        )
        for statement in statements:
            client.command(statement)  # type: ignore[attr-defined]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--days",
        type=int,
        default=1,
        help="window the rows spread over: 1M rows in 1 day is the density of 100M in 90",
    )
    args = parser.parse_args()
    work_dir = tempfile.mkdtemp(prefix="budmetrics-bench-inserts-")
    try:
        bench._setup_django(work_dir)
        from django.core.management import call_command

        from budmetrics_site.clickhouse.client import get_client

        call_command("migrate", verbosity=0)
        call_command("migrate", database="clickhouse", verbosity=0)
        bench._silence_logs()
        client = get_client()
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        configurations = _configurations()
        seconds: dict[str, list[float]] = {label: [] for label in configurations}
        bench._generate(args.rows, args.days, end, seed=7)  # warm-up: imports, first parts
        for _ in range(args.repeat):
            for label, names in configurations.items():
                _attach_only(client, names)
                bench._truncate_all(client)
                seconds[label].append(bench._generate(args.rows, args.days, end, seed=7))
                print(f"{label}: {seconds[label][-1]:.2f} s", file=sys.stderr, flush=True)
        bench._truncate_all(client)
        base = statistics.median(seconds["no views"])
        print(
            f"\ngenerate_traffic of {args.rows:,} rows over {args.days} days "
            f"({args.rows / (args.days * 86400):,.1f} rows/s of traffic), 5 projects, median of "
            f"{args.repeat} interleaved runs after one warm-up"
        )
        rows = [
            [
                label,
                str(len(names)),
                f"{statistics.median(seconds[label]):.2f}",
                f"{args.rows / statistics.median(seconds[label]):,.0f}",
                f"{base / statistics.median(seconds[label]):.0%}",
            ]
            for label, names in configurations.items()
        ]
        print(bench._table(["views attached", "views", "s", "rows/s", "vs no views"], rows))
        return 0
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
