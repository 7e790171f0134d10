"""Issue 11: the client-analytics and blocking-stats rollups and the views that feed them.

``clients_15m``: per client and 15-minute bucket, request measures and exact count maps of
the client's IPs, agents, devices, browsers, systems and countries. ``blocked_15m``:
blocked rows only, by reason, IP, model and endpoint. Each with its 1h, 6h and 1d tiers. Rows inserted before this migration
are backfilled by it; ``manage.py rebuild_rollups`` repairs a range later.
"""

from django.db import migrations

from analytics.schema import rollup_migration

create_rollups, drop_rollups = rollup_migration(
    *(f"{family}_{size}" for family in ("clients", "blocked") for size in ("15m", "1h", "6h", "1d"))
)


class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0007_rollup_tiers'),
    ]

    operations = [
        migrations.RunPython(create_rollups, drop_rollups, hints={"clickhouse": True}),
    ]
