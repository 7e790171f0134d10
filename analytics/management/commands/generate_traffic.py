"""``manage.py generate_traffic``: fill ``gateway_analytics`` with demo gateway traffic.

The work lives in ``analytics.demo.generator``; this command parses options and reports.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from analytics.demo.generator import TrafficSpec, project_layout, traffic_generate
from budmetrics_site.clickhouse.client import get_client
from budmetrics_site.errors import ServiceUnavailable


def _iso8601(value: str) -> datetime:
    """ISO 8601 with ``Z``, an offset, or naive (meaning UTC)."""
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"--end must be an ISO 8601 date-time, got {value!r}") from exc


class Command(BaseCommand):
    help = (
        "Write realistic demo gateway requests into gateway_analytics, generated inside "
        "ClickHouse; the same --seed gives the same rows."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rows", type=int, default=100_000, help="rows to write")
        parser.add_argument("--days", type=int, default=7, help="days of traffic, ending at --end")
        parser.add_argument("--projects", type=int, default=3, help="number of projects")
        parser.add_argument("--seed", type=int, default=42, help="same seed, same rows")
        parser.add_argument(
            "--batch-size", type=int, default=100_000, help="rows per INSERT … SELECT"
        )
        parser.add_argument(
            "--first-row",
            type=int,
            default=0,
            help="number of the first row: past the rows already written (same seed) adds new "
            "rows to the same projects",
        )
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="write nothing when gateway_analytics already has rows",
        )
        parser.add_argument(
            "--end", type=str, default=None, help="window end, ISO 8601 (default: now, UTC)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        end = _iso8601(options["end"]) if options["end"] else None
        try:
            spec = TrafficSpec(
                rows=options["rows"],
                days=options["days"],
                projects=options["projects"],
                seed=options["seed"],
                batch_size=options["batch_size"],
                end=end,
                first_row=options["first_row"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        try:
            client = get_client()
            result = traffic_generate(
                spec, client, if_empty=options["if_empty"], progress=options["verbosity"] > 0
            )
        except ServiceUnavailable as exc:
            raise CommandError(str(exc.detail)) from exc
        if result.skipped:
            self.stdout.write("gateway_analytics already has rows; nothing written (--if-empty).")
            self._print_projects(spec)
            return
        start, finish = spec.window
        oldest_kept = datetime.now(UTC) - timedelta(days=settings.CLICKHOUSE_RETENTION_DAYS)
        if start < oldest_kept:
            self.stderr.write(
                f"Warning: rows before {oldest_kept:%Y-%m-%d} are past the table's TTL "
                f"(CLICKHOUSE_RETENTION_DAYS={settings.CLICKHOUSE_RETENTION_DAYS}); "
                "ClickHouse will drop them at its next merge."
            )
        self.stdout.write(
            f"Wrote {result.rows:,} rows in {result.seconds:.2f} s "
            f"({result.rows_per_second:,.0f} rows/s); {spec.projects} projects, "
            f"seed {spec.seed}, {start.isoformat()} to {finish.isoformat()}."
        )
        self._print_projects(spec)

    def _print_projects(self, spec: TrafficSpec) -> None:
        """The demo project ids (the same for the same seed and count), so a first run can
        ask for them; ``manage.py demo_access`` gives a login and a key that read them."""
        ids = project_layout(spec.seed, spec.projects).project_ids
        self.stdout.write(f"Demo projects (seed {spec.seed}): {' '.join(ids)}")
