"""Celery app on the Redis broker. In the embedded default tasks run eagerly in-process
(chDB allows one process per data directory); see the README."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "budmetrics_site.settings")

app = Celery("budmetrics")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
