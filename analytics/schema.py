"""DDL for ``gateway_analytics``, printed from the model's fields.

Single node: one MergeTree table. With ``CLICKHOUSE_CLUSTER``: a ReplicatedMergeTree
``gateway_analytics_local`` on every replica plus a Distributed ``gateway_analytics`` over
it, both ``ON CLUSTER``, so queries keep using one table name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connections

from analytics.models import GatewayAnalytics
from analytics.query.registry import TABLE
from analytics.query.rollups import Rollup

LOCAL_TABLE = f"{TABLE}_local"

PARTITION_BY = "toYYYYMM(timestamp)"
ORDER_BY = "(project_id, timestamp)"

# (name, expression, type, granularity): the columns BudMetrics filters by most.
SKIP_INDEXES = (
    ("idx_model_id", "model_id", "bloom_filter(0.01)", 4),
    ("idx_endpoint_id", "endpoint_id", "bloom_filter(0.01)", 4),
    ("idx_client_id", "client_id", "bloom_filter(0.01)", 4),
    ("idx_client_ip", "client_ip", "bloom_filter(0.01)", 4),
    ("idx_path", "path", "bloom_filter(0.01)", 4),
    ("idx_country_code", "country_code", "set(300)", 4),
    ("idx_status_code", "status_code", "set(100)", 4),
    ("idx_is_blocked", "is_blocked", "minmax", 4),
    ("idx_block_rule_id", "block_rule_id", "bloom_filter(0.01)", 4),
)


@dataclass(frozen=True)
class TableOptions:
    database: str
    retention_days: int
    cluster: str = ""


def column_definitions(alias: str = "clickhouse") -> list[tuple[str, str]]:
    connection = connections[alias]
    columns = []
    for field in GatewayAnalytics._meta.local_fields:
        db_type = field.db_type(connection)
        if field.name == "timestamp":
            db_type = "DateTime64(3, 'UTC')"
        columns.append((field.column, db_type))
    return columns


def _body(columns: list[tuple[str, str]]) -> str:
    lines = [f"    `{name}` {db_type}" for name, db_type in columns]
    lines += [
        f"    INDEX {name} {expr} TYPE {index_type} GRANULARITY {granularity}"
        for name, expr, index_type, granularity in SKIP_INDEXES
    ]
    return "(\n" + ",\n".join(lines) + "\n)"


def _ttl(options: TableOptions) -> str:
    return f"toDateTime(timestamp) + INTERVAL {int(options.retention_days)} DAY DELETE"


def _tail(options: TableOptions) -> str:
    return (
        f"PARTITION BY {PARTITION_BY}\n"
        f"ORDER BY {ORDER_BY}\n"
        f"TTL {_ttl(options)}\n"
        "SETTINGS index_granularity = 8192"
    )


def create_table_statements(
    options: TableOptions,
    alias: str = "clickhouse",
    columns: list[tuple[str, str]] | None = None,
) -> list[str]:
    """The CREATE statements for the configured topology (identifiers are validated
    settings, never request data). ``columns`` defaults to the model's; tests pass an older
    shape to check that a migration upgrades it."""
    columns = column_definitions(alias) if columns is None else columns
    db = f"`{options.database}`"
    if not options.cluster:
        return [
            f"CREATE TABLE IF NOT EXISTS {db}.`{TABLE}`\n{_body(columns)}\n"
            f"ENGINE = MergeTree\n{_tail(options)}"
        ]
    cluster = f"`{options.cluster}`"
    replica_path = f"'/clickhouse/tables/{{shard}}/{options.database}/{LOCAL_TABLE}'"
    return [
        f"CREATE TABLE IF NOT EXISTS {db}.`{LOCAL_TABLE}` ON CLUSTER {cluster}\n{_body(columns)}\n"
        f"ENGINE = ReplicatedMergeTree({replica_path}, '{{replica}}')\n{_tail(options)}",
        f"CREATE TABLE IF NOT EXISTS {db}.`{TABLE}` ON CLUSTER {cluster} "
        f"AS {db}.`{LOCAL_TABLE}`\n"
        f"ENGINE = Distributed({cluster}, {db}, `{LOCAL_TABLE}`, cityHash64(request_id))",
    ]


def retention_statements(options: TableOptions) -> list[str]:
    """Set the table's TTL to ``retention_days`` (an existing table keeps the TTL it was
    created with until this runs). On a cluster the TTL belongs to the local tables."""
    db = f"`{options.database}`"
    if not options.cluster:
        return [f"ALTER TABLE {db}.`{TABLE}` MODIFY TTL {_ttl(options)}"]
    return [
        f"ALTER TABLE {db}.`{LOCAL_TABLE}` ON CLUSTER `{options.cluster}` "
        f"MODIFY TTL {_ttl(options)}"
    ]


def add_columns_statements(options: TableOptions, columns: Sequence[tuple[str, str]]) -> list[str]:
    """``ALTER TABLE … ADD COLUMN IF NOT EXISTS`` for a migration: existing rows keep their
    values and read the type's default (the column's "absent" value) for the new ones.
    ``IF NOT EXISTS`` because a fresh install already created them from the model. On a
    cluster the local tables change first, then the Distributed table that reads them."""
    adds = ", ".join(f"ADD COLUMN IF NOT EXISTS `{name}` {db_type}" for name, db_type in columns)
    return [f"ALTER TABLE {table} {adds}" for table in _alter_targets(options)]


def drop_columns_statements(options: TableOptions, names: Sequence[str]) -> list[str]:
    """The reverse of ``add_columns_statements``: the Distributed table first, so it never
    names a column its local tables no longer have."""
    drops = ", ".join(f"DROP COLUMN IF EXISTS `{name}`" for name in names)
    return [f"ALTER TABLE {table} {drops}" for table in reversed(_alter_targets(options))]


def _alter_targets(options: TableOptions) -> list[str]:
    """The tables an ALTER of the schema touches, in the order to change them."""
    db = f"`{options.database}`"
    if not options.cluster:
        return [f"{db}.`{TABLE}`"]
    cluster = f"`{options.cluster}`"
    return [f"{db}.`{LOCAL_TABLE}` ON CLUSTER {cluster}", f"{db}.`{TABLE}` ON CLUSTER {cluster}"]


def drop_table_statements(options: TableOptions) -> list[str]:
    db = f"`{options.database}`"
    if not options.cluster:
        return [f"DROP TABLE IF EXISTS {db}.`{TABLE}`"]
    cluster = f"`{options.cluster}`"
    return [
        f"DROP TABLE IF EXISTS {db}.`{TABLE}` ON CLUSTER {cluster}",
        f"DROP TABLE IF EXISTS {db}.`{LOCAL_TABLE}` ON CLUSTER {cluster}",
    ]


def current_options(alias: str = "clickhouse") -> TableOptions:
    from django.conf import settings

    return TableOptions(
        database=connections[alias].settings_dict["NAME"],
        retention_days=settings.CLICKHOUSE_RETENTION_DAYS,
        cluster=settings.CLICKHOUSE_CLUSTER,
    )


# --- rollups (issue 11) ------------------------------------------------------------------
# Each rollup is an AggregatingMergeTree fed by a materialized view on inserts into the raw
# table; with a cluster, a ReplicatedAggregatingMergeTree ``<rollup>_local`` per replica
# fed from the local raw table, plus a Distributed ``<rollup>`` over it (reads merge the
# shards' states, so sharding by request stays correct).


def _rollup_body(rollup: Rollup) -> str:
    lines = ["    `timestamp` DateTime('UTC')"]
    lines += [f"    `{name}` {db_type}" for name, db_type in rollup.columns]
    lines += [f"    `{atom.column}` {atom.type}" for atom in rollup.atoms]
    return "(\n" + ",\n".join(lines) + "\n)"


def _rollup_ttl(retention_days: int) -> str:
    return f"timestamp + INTERVAL {int(retention_days)} DAY DELETE"


def _rollup_tail(rollup: Rollup, retention_days: int) -> str:
    return (
        f"PARTITION BY {PARTITION_BY}\n"
        f"ORDER BY ({', '.join(rollup.key_columns)})\n"
        f"TTL {_rollup_ttl(retention_days)}"
    )


def rollup_view_name(rollup: Rollup) -> str:
    return f"{rollup.table}_mv"


def create_rollup_statements(
    options: TableOptions, rollup: Rollup, retention_days: int
) -> list[str]:
    """The rollup table and the view that feeds it (created after the table, so no insert
    is lost between them on a fresh install; rows written before are backfilled by
    ``manage.py rebuild_rollups``)."""
    db = f"`{options.database}`"
    body, tail = _rollup_body(rollup), _rollup_tail(rollup, retention_days)
    if not options.cluster:
        return [
            f"CREATE TABLE IF NOT EXISTS {db}.`{rollup.table}`\n{body}\n"
            f"ENGINE = AggregatingMergeTree\n{tail}",
            create_rollup_view_statement(options, rollup),
        ]
    cluster = f"`{options.cluster}`"
    local = f"{rollup.table}_local"
    replica_path = f"'/clickhouse/tables/{{shard}}/{options.database}/{local}'"
    return [
        f"CREATE TABLE IF NOT EXISTS {db}.`{local}` ON CLUSTER {cluster}\n{body}\n"
        f"ENGINE = ReplicatedAggregatingMergeTree({replica_path}, '{{replica}}')\n{tail}",
        f"CREATE TABLE IF NOT EXISTS {db}.`{rollup.table}` ON CLUSTER {cluster} "
        f"AS {db}.`{local}`\n"
        f"ENGINE = Distributed({cluster}, {db}, `{local}`, rand())",
        create_rollup_view_statement(options, rollup),
    ]


def create_rollup_view_statement(options: TableOptions, rollup: Rollup) -> str:
    """The materialized view feeding ``rollup`` (on a cluster: each shard's local table
    from the local table it is fed from)."""
    db = f"`{options.database}`"
    view = f"{db}.`{rollup_view_name(rollup)}`"
    if not options.cluster:
        return (
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {view} TO {db}.`{rollup.table}`\n"
            f"AS {rollup.state_select_sql(f'{db}.`{_fed_from(rollup)}`')}"
        )
    return (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {view} ON CLUSTER `{options.cluster}` "
        f"TO {db}.`{rollup.table}_local`\n"
        f"AS {rollup.state_select_sql(f'{db}.`{_fed_from(rollup, local=True)}`')}"
    )


def refeed_rollup_statements(options: TableOptions, rollup: Rollup) -> list[str]:
    """Point ``rollup``'s view at what the code now feeds it from (its rows stay): drop
    the view, create it again. Inserts landing between the two statements (milliseconds)
    miss this rollup; ``manage.py rebuild_rollups`` over the deploy's minutes repairs it."""
    on_cluster = f" ON CLUSTER `{options.cluster}`" if options.cluster else ""
    return [
        f"DROP VIEW IF EXISTS `{options.database}`.`{rollup_view_name(rollup)}`{on_cluster}",
        create_rollup_view_statement(options, rollup),
    ]


def _fed_from(rollup: Rollup, local: bool = False) -> str:
    """The table whose inserts feed ``rollup``'s view: the raw table, or for a coarser
    tier the finer rollup (so a tier aggregates the few rows of the finer view's block)."""
    if rollup.fed_from is None:
        return LOCAL_TABLE if local else TABLE
    return f"{rollup.fed_from.table}_local" if local else rollup.fed_from.table


def drop_rollup_statements(options: TableOptions, rollup: Rollup) -> list[str]:
    """The view first (no insert may reach a dropped table), then the tables."""
    db = f"`{options.database}`"
    on_cluster = f" ON CLUSTER `{options.cluster}`" if options.cluster else ""
    statements = [
        f"DROP VIEW IF EXISTS {db}.`{rollup_view_name(rollup)}`{on_cluster}",
        f"DROP TABLE IF EXISTS {db}.`{rollup.table}`{on_cluster}",
    ]
    if options.cluster:
        statements.append(f"DROP TABLE IF EXISTS {db}.`{rollup.table}_local`{on_cluster}")
    return statements


def rollup_retention_statements(
    options: TableOptions, rollup: Rollup, retention_days: int
) -> list[str]:
    """Set a rollup's TTL to ``retention_days`` (``ROLLUP_RETENTION_DAYS``)."""
    db = f"`{options.database}`"
    if not options.cluster:
        return [f"ALTER TABLE {db}.`{rollup.table}` MODIFY TTL {_rollup_ttl(retention_days)}"]
    return [
        f"ALTER TABLE {db}.`{rollup.table}_local` ON CLUSTER `{options.cluster}` "
        f"MODIFY TTL {_rollup_ttl(retention_days)}"
    ]


def rollup_write_table(options: TableOptions, rollup: Rollup) -> str:
    """Where a backfill writes: the local table on a cluster is per shard, so a backfill
    writes through the Distributed table (which spreads rows; reads merge them)."""
    return f"`{options.database}`.`{rollup.table}`"


def rollup_rebuild_statements(options: TableOptions, rollup: Rollup) -> list[str]:
    """Replace a rollup's rows for ``[{start}, {end})`` (aligned to its bucket, bound
    parameters) by a fresh aggregate of the raw rows (a tier: of the finer rollup's rows):
    delete, then ``INSERT … SELECT`` with the view's own SELECT. Running it twice gives the
    same rows (idempotent); rows the view adds for that range while it runs are counted
    twice, so rebuild ranges that receive no inserts (``rebuild_rollups`` stops at the
    last whole 15 minutes)."""
    db = f"`{options.database}`"
    delete_target = (
        f"{db}.`{rollup.table}_local` ON CLUSTER `{options.cluster}`"
        if options.cluster
        else f"{db}.`{rollup.table}`"
    )
    window = "timestamp >= {start:DateTime('UTC')} AND timestamp < {end:DateTime('UTC')}"
    source = f"(SELECT * FROM {db}.`{_fed_from(rollup)}` WHERE {window})"  # noqa: S608 - code constants
    return [
        f"ALTER TABLE {delete_target} DELETE WHERE {window} SETTINGS mutations_sync = 2",
        f"INSERT INTO {rollup_write_table(options, rollup)} {rollup.state_select_sql(source)}",
    ]


def rollup_backfill_statement(options: TableOptions, rollup: Rollup) -> str:
    """Every raw row (for a tier: every row of the rollup it is fed from) into a new,
    empty rollup (the migration that creates it)."""
    source = f"`{options.database}`.`{_fed_from(rollup)}`"
    return f"INSERT INTO {rollup_write_table(options, rollup)} {rollup.state_select_sql(source)}"


def rollup_migration(*names: str) -> tuple[Any, Any]:
    """``RunPython`` functions creating (with a backfill from raw rows) and dropping the
    named rollups: each migration names the rollups it adds, so adding one to ``ROLLUPS``
    later never changes what an applied migration did."""

    def chosen() -> list[Rollup]:
        from analytics.query.rollups import ROLLUPS

        return [ROLLUPS[name] for name in names]

    def create(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.alias != "clickhouse":
            return
        from django.conf import settings

        options = current_options(schema_editor.connection.alias)
        for rollup in chosen():
            for statement in create_rollup_statements(
                options, rollup, settings.ROLLUP_RETENTION_DAYS
            ):
                schema_editor.execute(statement, params=None)
            schema_editor.execute(rollup_backfill_statement(options, rollup), params=None)

    def drop(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.alias != "clickhouse":
            return
        options = current_options(schema_editor.connection.alias)
        for rollup in reversed(chosen()):  # a tier before the rollup feeding it
            for statement in drop_rollup_statements(options, rollup):
                schema_editor.execute(statement, params=None)

    return create, drop


# --- day tiers (ROLLUP_DAY_ZONES) ------------------------------------------------------------
# The zones with a day tier are a setting, not code, so no migration can name them: the
# migration that introduced them and every later ``migrate --database clickhouse`` make the
# tables match the setting (``sync_day_tiers``).


def _day_tier_tables(existing: Sequence[str], base: Rollup) -> list[str]:
    """The day tiers of ``base``'s family among ``existing`` table names."""
    prefix = f"{base.table.removesuffix('_15m')}_1d_"
    return sorted(t for t in existing if t.startswith(prefix) and not t.endswith(("_mv", "_local")))


def day_tier_sync_statements(
    options: TableOptions, existing: Sequence[str], retention_days: int, keep: bool = True
) -> list[str]:
    """Create (with a backfill from the 15-minute rollup) each configured day tier missing
    from ``existing`` (table names in the database) and drop each one no longer configured
    (every one when not ``keep``): it would cost a view on every insert and serve nothing."""
    from dataclasses import replace

    from analytics.query.rollups import DAY_TIERS, FAMILIES

    statements: list[str] = []
    for family, tiers in DAY_TIERS.items():
        base = FAMILIES[family][0]
        wanted = {tier.table: tier for tier in tiers.values()} if keep else {}
        for table, tier in wanted.items():
            if table not in existing:
                statements += create_rollup_statements(options, tier, retention_days)
                statements.append(rollup_backfill_statement(options, tier))
        for table in _day_tier_tables(existing, base):
            if table not in wanted:
                statements += drop_rollup_statements(options, replace(base, table=table))
    return statements


def sync_day_tiers(alias: str = "clickhouse", keep: bool = True) -> list[str]:
    """Run ``day_tier_sync_statements`` on ``alias``; returns what it ran."""
    from django.conf import settings

    options = current_options(alias)
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT name FROM system.tables WHERE database = currentDatabase()")
        existing = [row[0] for row in cursor.fetchall()]
        statements = day_tier_sync_statements(
            options, existing, settings.ROLLUP_RETENTION_DAYS, keep=keep
        )
        for statement in statements:
            cursor.execute(statement)
    return statements
