"""Issue 11: the client rollup starts at the hour. Its hourly table (``clients_1h``) is fed
from raw rows instead of from ``clients_15m``, which is dropped: client analytics has no
time buckets, so an hour-aligned middle serves any range, and the 15-minute table was the
costliest view on insert (bench/rollup_inserts.py). ``clients_1h`` keeps its rows: they
were made from the same raw rows. A database that got 0008 without ``clients_15m`` (made
after this change) gets the same view again.
"""

from dataclasses import replace

from django.db import migrations

from analytics.schema import current_options, drop_rollup_statements, refeed_rollup_statements


def refeed_clients(apps, schema_editor):
    if schema_editor.connection.alias != "clickhouse":
        return
    from analytics.query.rollups import ROLLUPS

    options = current_options(schema_editor.connection.alias)
    hourly = ROLLUPS["clients_1h"]
    retired = replace(hourly, name="clients_15m", table=hourly.table.replace("_1h", "_15m"))
    for statement in [
        *refeed_rollup_statements(options, hourly),
        *drop_rollup_statements(options, retired),
    ]:
        schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ("analytics", "0009_rollups_geo_routes"),
    ]

    operations = [
        # Backwards: nothing to undo; 0008's reverse drops the client rollups.
        migrations.RunPython(refeed_clients, migrations.RunPython.noop, hints={"clickhouse": True}),
    ]
