"""Celery entry points (schedule ``blocking.tasks.expire_blocking_rules`` every minute
with Celery beat, or run ``manage.py expire_blocking_rules`` from cron)."""

from __future__ import annotations

from celery import shared_task

from blocking import services


@shared_task(name="blocking.expire_blocking_rules")
def expire_blocking_rules() -> int:
    return len(services.rules_expire_due())
