"""Issue 11: the client-analytics and blocking-stats rollups and the views that feed them.

``clients_15m``: per client and 15-minute bucket, request measures and exact count maps of
the client's IPs, agents, devices, browsers, systems and countries. ``blocked_15m``:
blocked rows only, by reason, IP, model and endpoint. Rows inserted before this migration
are backfilled by it; ``manage.py rebuild_rollups`` repairs a range later.
"""

from django.db import migrations

from analytics.schema import rollup_migration

create_rollups, drop_rollups = rollup_migration("clients_15m", "blocked_15m")


class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0006_rollups'),
    ]

    operations = [
        migrations.RunPython(create_rollups, drop_rollups, hints={"clickhouse": True}),
    ]
