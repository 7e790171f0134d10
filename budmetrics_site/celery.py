"""Celery app on the Redis broker, and the beat schedule.

With a ClickHouse server: run a worker and beat as separate processes (README). With
embedded chDB (one process per data directory) tasks run eagerly in the web process and
``budmetrics_site.jobs`` runs this same schedule on a thread there.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "budmetrics_site.settings")

app = Celery("budmetrics")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

BEAT_SCHEDULE = {
    "refresh-due-saved-queries": {"task": "analytics.refresh_due_saved_queries", "schedule": 30.0},
    "warm-dashboards": {"task": "analytics.warm_dashboards", "schedule": 30.0},
    "expire-blocking-rules": {"task": "blocking.expire_blocking_rules", "schedule": 60.0},
    "deliver-rule-publications": {
        "task": "blocking.deliver_rule_publications",
        "schedule": 10.0,
    },
    "cleanup-audit": {"task": "analytics.cleanup_audit", "schedule": 3600.0},
    "cleanup-exports": {"task": "analytics.cleanup_exports", "schedule": 300.0},
}
app.conf.beat_schedule = BEAT_SCHEDULE
