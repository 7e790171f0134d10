"""Issue 11: rollup tables and the materialized views that feed them.

The DDL is printed by ``analytics.schema`` from ``analytics.query.rollups`` (single node:
AggregatingMergeTree + view; ``CLICKHOUSE_CLUSTER``: Replicated local tables, a
Distributed table and a view per replica). Rows inserted before this migration are not in
the rollups: ``manage.py rebuild_rollups`` backfills them (the planner cannot tell a
missing backfill from no traffic, so run it after migrating a table that has rows).
"""

from django.db import migrations


def create_rollups(apps, schema_editor):
    if schema_editor.connection.alias != "clickhouse":
        return
    from django.conf import settings

    from analytics import schema
    from analytics.query.rollups import ROLLUPS

    options = schema.current_options(schema_editor.connection.alias)
    for rollup in ROLLUPS.values():
        for statement in schema.create_rollup_statements(
            options, rollup, settings.ROLLUP_RETENTION_DAYS
        ):
            schema_editor.execute(statement, params=None)
        schema_editor.execute(schema.rollup_backfill_statement(options, rollup), params=None)


def drop_rollups(apps, schema_editor):
    if schema_editor.connection.alias != "clickhouse":
        return
    from analytics import schema
    from analytics.query.rollups import ROLLUPS

    options = schema.current_options(schema_editor.connection.alias)
    for rollup in ROLLUPS.values():
        for statement in schema.drop_rollup_statements(options, rollup):
            schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0005_export_jobs'),
    ]

    operations = [
        migrations.RunPython(create_rollups, drop_rollups, hints={"clickhouse": True}),
    ]
