"""Issue 11: the rule-match rollup (``rules_15m``) and its view, for blocking-stats' per-rule
match counts and last matches: rows attributed to a rule, by rule, model and endpoint, in
15-minute buckets (no coarser tiers). Rows inserted before this migration are backfilled
by it; ``manage.py rebuild_rollups`` repairs a range.
"""

from django.db import migrations

from analytics.schema import rollup_migration

create_rollups, drop_rollups = rollup_migration("rules_15m")


class Migration(migrations.Migration):

    dependencies = [
        ("analytics", "0010_clients_hourly"),
    ]

    operations = [
        migrations.RunPython(create_rollups, drop_rollups, hints={"clickhouse": True}),
    ]
