"""Celery entry points (schedule ``blocking.tasks.expire_blocking_rules`` every minute
with Celery beat, or run ``manage.py expire_blocking_rules`` from cron;
``deliver_rule_publications`` retries the publication outbox every 10 seconds)."""

from __future__ import annotations

from celery import shared_task

from blocking import publishing, services


@shared_task(name="blocking.expire_blocking_rules")
def expire_blocking_rules() -> int:
    return len(services.rules_expire_due())


@shared_task(name="blocking.deliver_rule_publications")
def deliver_rule_publications() -> dict[str, int]:
    """Deliver rule changes whose publication is still pending (Redis was down)."""
    return publishing.deliver_pending()
