"""Issue 11: day tiers of the series rollup in the zones of ``ROLLUP_DAY_ZONES`` (default
Asia/Kolkata), fed from ``series_15m`` and backfilled from it. The set follows the setting:
every later ``migrate --database clickhouse`` creates and drops day tiers to match it
(``AnalyticsConfig.ready``'s post-migrate hook). Reversed: every day tier is dropped.
"""

from django.db import migrations


def create_day_tiers(apps, schema_editor):
    if schema_editor.connection.alias == "clickhouse":
        from analytics.schema import sync_day_tiers

        sync_day_tiers(schema_editor.connection.alias)


def drop_day_tiers(apps, schema_editor):
    if schema_editor.connection.alias == "clickhouse":
        from analytics.schema import sync_day_tiers

        sync_day_tiers(schema_editor.connection.alias, keep=False)


class Migration(migrations.Migration):

    dependencies = [
        ("analytics", "0011_rollup_rules"),
    ]

    operations = [
        migrations.RunPython(create_day_tiers, drop_day_tiers, hints={"clickhouse": True}),
    ]
