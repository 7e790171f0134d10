from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import connections

from analytics import schema


class Command(BaseCommand):
    help = (
        "Set gateway_analytics' TTL to CLICKHOUSE_RETENTION_DAYS. The table keeps the TTL it "
        "was created with until this runs; ClickHouse then drops expired rows in the "
        "background (materialising the new TTL rewrites existing parts once)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="print the statements, change nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        table_options = schema.current_options()
        statements = schema.retention_statements(table_options)
        if options["dry_run"]:
            for statement in statements:
                self.stdout.write(statement)
            return
        cursor = connections["clickhouse"].cursor()
        for statement in statements:
            cursor.execute(statement)
        self.stdout.write(
            f"gateway_analytics now keeps {table_options.retention_days} days of rows."
        )
