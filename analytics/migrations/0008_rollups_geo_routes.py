"""Issue 11: the geography and routes rollups (``geo_15m``, ``routes_15m``) and their
materialized views, for GET /gateway/geographical-stats and GET /gateway/top-routes.

The DDL is printed by ``analytics.schema`` from ``analytics.query.rollups``; rows inserted
before this migration are backfilled by it; ``manage.py rebuild_rollups`` repairs a range.
"""

from django.db import migrations

from analytics.schema import rollup_migration

create_rollups, drop_rollups = rollup_migration("geo_15m", "routes_15m")


class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0006_rollups'),
    ]

    operations = [
        migrations.RunPython(create_rollups, drop_rollups, hints={"clickhouse": True}),
    ]
