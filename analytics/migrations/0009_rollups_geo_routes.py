"""Issue 11: the geography and routes rollups (``geo_15m``, ``routes_15m``) and their
materialized views, with their 1h, 6h and 1d tiers, for GET /gateway/geographical-stats and GET /gateway/top-routes.

The DDL is printed by ``analytics.schema`` from ``analytics.query.rollups``; rows inserted
before this migration are backfilled by it; ``manage.py rebuild_rollups`` repairs a range.
"""

from django.db import migrations

from analytics.schema import rollup_migration

create_rollups, drop_rollups = rollup_migration(
    *(f"{family}_{size}" for family in ("geo", "routes") for size in ("15m", "1h", "6h", "1d"))
)


class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0008_rollups_clients_blocking'),
    ]

    operations = [
        migrations.RunPython(create_rollups, drop_rollups, hints={"clickhouse": True}),
    ]
