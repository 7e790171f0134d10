"""Benchmark ``generate_traffic`` against a throw-away embedded chDB directory.

    .venv/bin/python bench/generate_traffic.py --rows 1000000

Prints rows, seconds and rows/s; the aim is 1M rows in under 30 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--projects", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--batch-size", type=int, default=100_000)
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="budmetrics-bench-chdb-")
    os.environ["CLICKHOUSE_EMBEDDED_PATH"] = data_dir
    os.environ["CLICKHOUSE_HOST"] = ""  # always the embedded engine, never a configured server
    os.environ["DJANGO_SETTINGS_MODULE"] = "budmetrics_site.settings"
    sys.path.insert(0, str(REPO))
    try:
        import django

        django.setup()
        from django.core.management import call_command

        from analytics.demo.generator import TrafficSpec, table_row_count, traffic_generate
        from budmetrics_site.clickhouse.client import get_client

        call_command("migrate", database="clickhouse", verbosity=0)
        client = get_client()
        spec = TrafficSpec(
            rows=args.rows,
            days=args.days,
            projects=args.projects,
            seed=args.seed,
            batch_size=args.batch_size,
        )
        result = traffic_generate(spec, client)
        stored = table_row_count(client)
        assert stored == args.rows, f"expected {args.rows} rows, table has {stored}"
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)

    rows = [
        ("rows", f"{result.rows:,}"),
        ("batch size", f"{args.batch_size:,}"),
        ("seconds", f"{result.seconds:.2f}"),
        ("rows/s", f"{result.rows_per_second:,.0f}"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"\ngenerate_traffic into embedded chDB ({os.cpu_count()} CPUs)")
    for name, value in rows:
        print(f"  {name:<{width}}  {value:>12}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
