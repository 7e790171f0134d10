"""Migration 0004 (issue 14's LLM columns) on tables holding rows written before it.

Two real runs: the migration's SQL on an old-shaped table in a throw-away database, and the
real ``migrate`` backwards and forwards on the test table, answering the same API queries
before and after. Plus the cluster variant's text (no cluster in the test engine).
"""

from __future__ import annotations

import importlib
import io
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connections

from analytics import schema
from analytics.query.rollups import SERIES
from tests import analytics_oracle as oracle
from tests.conftest import COLUMNS, clickhouse_client, truncate_clickhouse

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

migration = importlib.import_module("analytics.migrations.0004_llm_columns")
NEW = [name for name, _ in migration.COLUMNS]
START = datetime(2025, 2, 1, tzinfo=UTC)
HOURS = 48
OLD_ROWS = [
    {k: v for k, v in row.items() if k not in NEW} for row in oracle.dataset(START, HOURS, 1500)
]
OLD_COLUMNS = [column for column in COLUMNS if column not in NEW]
ABSENT = (
    "is_streaming OR ttft_ms != 0 OR routing_decision != '' OR attempts != 0 "
    "OR finish_reason != '' OR cached_input_tokens != 0 OR model_version != '' "
    "OR length(tags) != 0 OR notEmpty(mapKeys(tags))"
)
# Queries written before the LLM columns existed (what dashboards and reports ask).
OLD_QUERIES = (
    "SELECT count(), sum(total_tokens), round(sum(cost), 9), countIf(status_code >= 400) "
    "FROM {table}",
    "SELECT model_name, count(), quantileExact(0.95)(response_time_ms), avg(response_time_ms) "
    "FROM {table} GROUP BY model_name ORDER BY model_name",
    "SELECT toStartOfHour(timestamp) AS h, status_code, count() FROM {table} "
    "GROUP BY h, status_code ORDER BY h, status_code",
    "SELECT * FROM {table} ORDER BY request_id LIMIT 25",  # `*`: the old columns, then new
    "SELECT groupBitXor(cityHash64(" + ", ".join(OLD_COLUMNS) + ")) FROM {table}",  # noqa: S608
)


def query(sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    result = clickhouse_client().query(sql, parameters=parameters or {})
    return [tuple(row) for row in result.result_rows]


def read(database: str, select: str) -> list[tuple[Any, ...]]:
    """``SELECT <select>`` from the database's table (identifiers made by the test)."""
    return query(f"SELECT {select} FROM `{database}`.`gateway_analytics`")  # noqa: S608


def column_shape(database: str) -> list[tuple[Any, ...]]:
    return query(
        "SELECT name, type, default_kind, default_expression FROM system.columns "
        "WHERE database = {db:String} AND table = 'gateway_analytics' ORDER BY position",
        {"db": database},
    )


def insert_old_rows(database: str) -> None:
    data = [[row[column] for column in OLD_COLUMNS] for row in OLD_ROWS]
    clickhouse_client().insert(
        "gateway_analytics", data, column_names=OLD_COLUMNS, database=database
    )


@pytest.fixture
def old_table(django_db_blocker: Any) -> Iterator[schema.TableOptions]:
    """A throw-away database holding ``gateway_analytics`` as it was before 0004, with rows."""
    database = f"llm_migration_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with django_db_blocker.unblock():
        client = clickhouse_client()
        client.command(f"CREATE DATABASE `{database}`")
        try:
            options = schema.TableOptions(database=database, retention_days=7300)
            old = [c for c in schema.column_definitions() if c[0] not in NEW]
            for statement in schema.create_table_statements(options, columns=old):
                client.command(statement)
            insert_old_rows(database)
            yield options
        finally:
            client.command(f"DROP DATABASE IF EXISTS `{database}`")


def run(statements: list[str]) -> None:
    for statement in statements:
        clickhouse_client().command(statement)


def answers(database: str) -> list[list[tuple[Any, ...]]]:
    table = f"`{database}`.`gateway_analytics`"
    return [query(sql.format(table=table)) for sql in OLD_QUERIES]


def test_the_frozen_columns_are_the_models_columns() -> None:
    """The migration freezes its column list; today it must equal the model's last eight."""
    assert schema.column_definitions()[-len(migration.COLUMNS) :] == list(migration.COLUMNS)


def test_old_table_keeps_its_rows_and_reads_the_new_columns_as_absent(
    old_table: schema.TableOptions,
) -> None:
    database = old_table.database
    assert [name for name, *_ in column_shape(database)] == OLD_COLUMNS
    before = answers(database)

    run(schema.add_columns_statements(old_table, migration.COLUMNS))

    assert read(database, "count()") == [(len(OLD_ROWS),)]
    assert read(database, f"countIf({ABSENT})") == [(0,)]
    after = answers(database)
    assert after[:3] == before[:3]
    assert after[4] == before[4]  # every old value of every row, unchanged
    width = len(OLD_COLUMNS)
    assert [row[:width] for row in after[3]] == before[3]
    assert all(row[width:] == (False, 0, "", 0, "", 0, "", {}) for row in after[3])
    # The migrated table has exactly the shape a fresh install creates from the model.
    fresh = connections["clickhouse"].settings_dict["NAME"]
    assert column_shape(database) == column_shape(fresh)


def test_rows_written_after_the_migration_carry_values_next_to_old_rows(
    old_table: schema.TableOptions,
) -> None:
    database = old_table.database
    run(schema.add_columns_statements(old_table, migration.COLUMNS))
    clickhouse_client().insert(
        "gateway_analytics",
        [
            [
                uuid.uuid4(),
                START,
                True,
                420,
                "fallback",
                2,
                "stop",
                64,
                "gpt-4o-2024-08-06",
                {"env": "prod"},
            ]
        ],
        column_names=["request_id", "timestamp", *NEW],
        database=database,
    )

    assert read(
        database,
        f"countIf({ABSENT}), countIf(tags['env'] = 'prod' AND attempts = 2), "
        "countIf(tags['team'] = '')",
    ) == [(1, 1, len(OLD_ROWS) + 1)]


def test_migration_sql_is_idempotent_and_reversible(old_table: schema.TableOptions) -> None:
    database = old_table.database
    before = answers(database)

    run(schema.add_columns_statements(old_table, migration.COLUMNS))
    run(schema.add_columns_statements(old_table, migration.COLUMNS))  # fresh installs do this
    run(schema.drop_columns_statements(old_table, NEW))

    assert [name for name, *_ in column_shape(database)] == OLD_COLUMNS
    assert answers(database) == before


# --- the real migrate command on the test table -------------------------------------------

OLD_API_BODIES: tuple[dict[str, Any], ...] = (
    {
        "metrics": [
            "total_requests",
            "error_rate",
            "p95_response_time",
            "total_tokens",
            "total_cost",
            "unique_ips",
        ],
        "group_by": ["model_name"],
        "time_bucket": "1h",
    },
    {"metrics": ["total_requests", "avg_response_time"], "group_by": ["status_code", "path"]},
)


def api_answers(client: Any) -> list[Any]:
    cache.clear()  # the second round must be computed, not served from the first
    out = []
    for body in OLD_API_BODIES:
        response = client.post(
            "/gateway/analytics",
            {
                **body,
                # The old-shape table has no rollups yet: raw answers, before and after.
                "exact": True,
                "start_time": START.isoformat(),
                "end_time": (START + timedelta(hours=HOURS)).isoformat(),
            },
            format="json",
        )
        assert response.status_code == 200, response.json()
        data = response.json()["data"]
        data["meta"].pop("elapsed_ms")  # wall time, the one field that may differ
        out.append(data)
    return out


def migrate(target: str | None = None) -> None:
    arguments = ["analytics", target] if target else []
    call_command("migrate", *arguments, database="clickhouse", stdout=io.StringIO())


def test_migrate_backwards_and_forwards_on_the_test_table(superuser_client: Any) -> None:
    database = connections["clickhouse"].settings_dict["NAME"]
    full_shape = column_shape(database)
    client = clickhouse_client()
    client.command("TRUNCATE TABLE gateway_analytics")
    try:
        migrate("0003")
        assert [name for name, *_ in column_shape(database)] == OLD_COLUMNS
        insert_old_rows(database)
        before = api_answers(superuser_client)

        migrate()

        assert column_shape(database) == full_shape
        assert read(database, f"count(), countIf({ABSENT})") == [(len(OLD_ROWS), 0)]
        assert api_answers(superuser_client) == before
        # Migration 0006 aggregated the rows already there into the rollup.
        rolled = client.query(f"SELECT countMerge(s_n) FROM {SERIES.table}")  # noqa: S608
        assert rolled.result_rows == [(len(OLD_ROWS),)]
    finally:
        migrate()  # never leave the shared test table in the old shape
        truncate_clickhouse()


# --- cluster mode (text only: the embedded engine has no cluster) -------------------------


def test_cluster_migration_alters_local_tables_then_the_distributed_table() -> None:
    options = schema.TableOptions(database="budmetrics", retention_days=30, cluster="prod")

    local, distributed = schema.add_columns_statements(options, migration.COLUMNS)

    assert local.startswith("ALTER TABLE `budmetrics`.`gateway_analytics_local` ON CLUSTER `prod` ")
    assert distributed.startswith("ALTER TABLE `budmetrics`.`gateway_analytics` ON CLUSTER `prod` ")
    for statement in (local, distributed):
        assert "ADD COLUMN IF NOT EXISTS `tags` Map(String, String)" in statement
        assert "ADD COLUMN IF NOT EXISTS `routing_decision` LowCardinality(String)" in statement
        assert "ADD COLUMN IF NOT EXISTS `attempts` UInt8" in statement
        assert statement.count("ADD COLUMN IF NOT EXISTS") == len(NEW)
        assert "DEFAULT" not in statement  # the type defaults are the "absent" values
    drop_distributed, drop_local = schema.drop_columns_statements(options, NEW)
    assert drop_distributed.startswith("ALTER TABLE `budmetrics`.`gateway_analytics` ON CLUSTER")
    assert drop_local.startswith("ALTER TABLE `budmetrics`.`gateway_analytics_local` ON CLUSTER")
    assert drop_local.count("DROP COLUMN IF EXISTS") == len(NEW)


def test_single_node_migration_is_one_alter_without_on_cluster() -> None:
    options = schema.TableOptions(database="budmetrics", retention_days=30)

    (statement,) = schema.add_columns_statements(options, migration.COLUMNS)

    assert statement.startswith("ALTER TABLE `budmetrics`.`gateway_analytics` ADD COLUMN")
    assert "ON CLUSTER" not in statement


def test_cluster_create_statements_carry_the_llm_columns() -> None:
    options = schema.TableOptions(database="budmetrics", retention_days=30, cluster="prod")

    local, distributed = schema.create_table_statements(options)

    for name, db_type in migration.COLUMNS:
        assert f"    `{name}` {db_type}" in local
    assert "AS `budmetrics`.`gateway_analytics_local`" in distributed  # copies the columns
