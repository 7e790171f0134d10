"""Issue 11: the client-analytics and blocking-stats rollups and the views that feed them.

``clients_1h``: per client and hour, request measures and exact count maps of the client's
IPs, agents, devices, browsers, systems and countries, with its 6h and 1d tiers (this
migration first made a ``clients_15m`` under them; 0010 removes it where it was made).
``blocked_15m``: blocked rows only, by reason, IP, model and endpoint, with its 1h, 6h and
1d tiers. Rows inserted before this migration are backfilled by it; ``manage.py
rebuild_rollups`` repairs a range later.
"""

from django.db import migrations

from analytics.schema import rollup_migration

create_rollups, drop_rollups = rollup_migration(
    *(f"clients_{size}" for size in ("1h", "6h", "1d")),
    *(f"blocked_{size}" for size in ("15m", "1h", "6h", "1d")),
)


class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0007_rollup_tiers'),
    ]

    operations = [
        migrations.RunPython(create_rollups, drop_rollups, hints={"clickhouse": True}),
    ]
