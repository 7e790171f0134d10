"""Issue 11: the series rollup table and the materialized view that feeds it.

The DDL is printed by ``analytics.schema`` from ``analytics.query.rollups`` (single node:
AggregatingMergeTree + view; ``CLICKHOUSE_CLUSTER``: Replicated local tables, a
Distributed table and a view per replica). Rows inserted before this migration are
backfilled by it; ``manage.py rebuild_rollups`` repairs a range later.
"""

from django.db import migrations

from analytics.schema import rollup_migration

create_rollups, drop_rollups = rollup_migration("series_15m")


class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0005_export_jobs'),
    ]

    operations = [
        migrations.RunPython(create_rollups, drop_rollups, hints={"clickhouse": True}),
    ]
