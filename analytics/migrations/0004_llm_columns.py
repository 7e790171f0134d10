"""Issue 14: the LLM columns of ``gateway_analytics``, added in place (rows are kept).

The column list is frozen here, not read from the model, so this migration prints the same
SQL whatever later migrations do to the model. Every type's default is the column's
"absent" value (false, 0, '', map()), which rows written before this migration read.
"""

import clickhouse_backend.models
from django.db import migrations

COLUMNS: tuple[tuple[str, str], ...] = (
    ("is_streaming", "Bool"),
    ("ttft_ms", "UInt32"),
    ("routing_decision", "LowCardinality(String)"),
    ("attempts", "UInt8"),
    ("finish_reason", "LowCardinality(String)"),
    ("cached_input_tokens", "UInt32"),
    ("model_version", "LowCardinality(String)"),
    ("tags", "Map(String, String)"),
)


def add_columns(apps, schema_editor):
    if schema_editor.connection.alias != "clickhouse":
        return
    from analytics import schema

    options = schema.current_options(schema_editor.connection.alias)
    for statement in schema.add_columns_statements(options, COLUMNS):
        schema_editor.execute(statement, params=None)


def drop_columns(apps, schema_editor):
    if schema_editor.connection.alias != "clickhouse":
        return
    from analytics import schema

    options = schema.current_options(schema_editor.connection.alias)
    for statement in schema.drop_columns_statements(options, [name for name, _ in COLUMNS]):
        schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ('analytics', '0003_saved_query'),
    ]

    # The model is unmanaged, so the AddFields only keep the migration state in step with
    # it; the RunPython is what changes the table.
    operations = [
        migrations.AddField(
            model_name='gatewayanalytics',
            name='is_streaming',
            field=clickhouse_backend.models.BoolField(default=False),
        ),
        migrations.AddField(
            model_name='gatewayanalytics',
            name='ttft_ms',
            field=clickhouse_backend.models.UInt32Field(default=0),
        ),
        migrations.AddField(
            model_name='gatewayanalytics',
            name='routing_decision',
            field=clickhouse_backend.models.StringField(default='', low_cardinality=True),
        ),
        migrations.AddField(
            model_name='gatewayanalytics',
            name='attempts',
            field=clickhouse_backend.models.UInt8Field(default=0),
        ),
        migrations.AddField(
            model_name='gatewayanalytics',
            name='finish_reason',
            field=clickhouse_backend.models.StringField(default='', low_cardinality=True),
        ),
        migrations.AddField(
            model_name='gatewayanalytics',
            name='cached_input_tokens',
            field=clickhouse_backend.models.UInt32Field(default=0),
        ),
        migrations.AddField(
            model_name='gatewayanalytics',
            name='model_version',
            field=clickhouse_backend.models.StringField(default='', low_cardinality=True),
        ),
        migrations.AddField(
            model_name='gatewayanalytics',
            name='tags',
            field=clickhouse_backend.models.MapField(default=dict, key_field=clickhouse_backend.models.StringField(), value_field=clickhouse_backend.models.StringField()),
        ),
        migrations.RunPython(add_columns, drop_columns, hints={"clickhouse": True}),
    ]
