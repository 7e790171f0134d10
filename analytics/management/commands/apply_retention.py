from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connections

from analytics import schema
from analytics.query.rollups import ROLLUPS


class Command(BaseCommand):
    help = (
        "Set gateway_analytics' TTL to CLICKHOUSE_RETENTION_DAYS and each rollup's to "
        "ROLLUP_RETENTION_DAYS. A table keeps the TTL it was created with until this runs; "
        "ClickHouse then drops expired rows in the background (materialising the new TTL "
        "rewrites existing parts once)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="print the statements, change nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        table_options = schema.current_options()
        statements = schema.retention_statements(table_options)
        for rollup in ROLLUPS.values():
            statements += schema.rollup_retention_statements(
                table_options, rollup, settings.ROLLUP_RETENTION_DAYS
            )
        if options["dry_run"]:
            for statement in statements:
                self.stdout.write(statement)
            return
        cursor = connections["clickhouse"].cursor()
        for statement in statements:
            cursor.execute(statement)
        self.stdout.write(
            f"gateway_analytics now keeps {table_options.retention_days} days of rows; "
            f"its rollups keep {settings.ROLLUP_RETENTION_DAYS} days."
        )
