from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate

# From this migration on, the day tiers follow ROLLUP_DAY_ZONES on every migrate.
DAY_TIERS_MIGRATION = ("analytics", "0012_rollup_day_tiers")


def sync_day_tiers_after_migrate(using: str, **kwargs: Any) -> None:
    """``migrate --database clickhouse`` makes the day tiers match ROLLUP_DAY_ZONES, so a
    changed setting takes effect on the next deploy's migrate (no migration can name
    zones that are configuration)."""
    if using != "clickhouse":
        return
    from django.db import connections
    from django.db.migrations.recorder import MigrationRecorder

    from analytics.schema import sync_day_tiers

    if DAY_TIERS_MIGRATION in MigrationRecorder(connections[using]).applied_migrations():
        sync_day_tiers(using)


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = "Gateway analytics"

    def ready(self) -> None:
        from django.conf import settings

        post_migrate.connect(sync_day_tiers_after_migrate, sender=self)
        if settings.INPROCESS_JOBS:
            from budmetrics_site.jobs import start_inprocess_scheduler

            start_inprocess_scheduler()
