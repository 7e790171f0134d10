"""Benchmark what each rollup view costs on insert: ``generate_traffic`` throughput with no
view, with every view, with each family's views alone, with the families' base views only,
and with the client family as it was before migration 0010 (a 15-minute table under the
hourly one).

    .venv/bin/python bench/rollup_inserts.py --rows 1000000 --repeat 2

In a throw-away embedded chDB directory, for each configuration it drops the views not in
it, writes ``--rows`` rows (over ``--days`` days, 5 projects, the same seed every time) into
emptied tables, and times it; after one warm-up, configurations are interleaved
``--repeat`` times and the median taken. A view's cost grows with the rollup rows a batch
makes, i.e. with how thinly the rows spread over time: the default, 1M rows in one day, is
the density of the issue's 100M rows over 90 days; ``--days 90`` is the demo's density.
Prints one table: seconds, rows/s and throughput relative to no views.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import rollups as bench

# The client family as migration 0008 first made it: a 15-minute rollup under the hourly
# one (migration 0010 removed it), to compare in the same run.
OLD_CLIENTS = "clients_15m (before 0010)"


def _old_clients_chain() -> tuple[Any, ...]:
    from analytics.query.rollups import CLIENTS, FAMILIES

    old_base = replace(
        CLIENTS, name="clients_15m", table=CLIENTS.table.replace("_1h", "_15m"), bucket_seconds=900
    )
    chain = [old_base]
    for tier in FAMILIES[CLIENTS.name]:
        chain.append(replace(tier, fed_from=chain[-1]))
    return tuple(chain)


def _configurations() -> dict[str, tuple[Any, ...]]:
    from analytics.query.rollups import FAMILIES, ROLLUPS

    configurations: dict[str, tuple[Any, ...]] = {"no views": ()}
    configurations["base views only"] = tuple(chain[0] for chain in FAMILIES.values())
    for family, chain in FAMILIES.items():
        configurations[f"{family} family"] = chain
    configurations[OLD_CLIENTS] = _old_clients_chain()
    configurations["every view"] = tuple(ROLLUPS.values())
    return configurations


def _attach_only(client: Any, rollups: tuple[Any, ...]) -> None:
    from django.conf import settings

    from analytics import schema
    from analytics.query.rollups import ROLLUPS

    options = schema.current_options()
    for rollup in (*ROLLUPS.values(), *_old_clients_chain()):
        client.command(f"DROP VIEW IF EXISTS {schema.rollup_view_name(rollup)}")
    for rollup in rollups:
        statements = schema.create_rollup_statements(
            options, rollup, settings.ROLLUP_RETENTION_DAYS
        )
        for statement in statements:
            client.command(statement)
    old_base = _old_clients_chain()[0]
    client.command(f"TRUNCATE TABLE IF EXISTS {old_base.table}")


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
        client = bench.migrated_client()
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
