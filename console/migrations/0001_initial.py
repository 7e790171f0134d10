from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="TrafficConsole",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
            ],
            options={
                "verbose_name": "Traffic",
                "verbose_name_plural": "Traffic",
                "permissions": [("view_traffic_console", "Can view the traffic console")],
                "managed": False,
                "default_permissions": (),
            },
        ),
    ]
