"""Issue 11: 1-hour, 6-hour and 1-day tiers of the series rollup, each fed by a view on the
finer rollup (so a tier aggregates the finer view's few rows, not the raw insert) and
backfilled from it."""

from django.db import migrations

from analytics.schema import rollup_migration

create_tiers, drop_tiers = rollup_migration("series_1h", "series_6h", "series_1d")


class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0006_rollups'),
    ]

    operations = [
        migrations.RunPython(create_tiers, drop_tiers, hints={"clickhouse": True}),
    ]
