"""Rule changes that must reach the gateway: every path (admin, API, bulk actions, expiry)
ends in ``publishing.enqueue`` for the projects it touched, inside the transaction that
stores the change (``BlockingRule.save``/``delete`` are atomic for that reason)."""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from blocking import publishing
from blocking.models import BlockingRule, BlockingRuleQuerySet, RuleStatus

logger = structlog.get_logger(__name__)


@receiver(post_save, sender=BlockingRule, dispatch_uid="blocking_rule_saved")
def _rule_saved(sender: type, instance: BlockingRule, **kwargs: Any) -> None:
    moved_from = set() if kwargs.get("created") else {instance._loaded_project_id}
    publishing.enqueue({instance.project_id, *moved_from})
    instance._loaded_project_id = instance.project_id


@receiver(post_delete, sender=BlockingRule, dispatch_uid="blocking_rule_deleted")
def _rule_deleted(sender: type, instance: BlockingRule, **kwargs: Any) -> None:
    publishing.enqueue({instance.project_id})


def rules_set_status(rules: BlockingRuleQuerySet, status: str) -> int:
    """Bulk status change (admin actions). ``QuerySet.update`` sends no signals, so this
    publishes the affected projects itself. Rules past their expiry cannot be
    re-activated this way; they become expired instead."""
    with transaction.atomic():
        now = timezone.now()
        rows = list(rules.select_for_update().values_list("id", "project_id"))
        ids = [row[0] for row in rows]
        changed = BlockingRule.objects.filter(id__in=ids).exclude(status=status)
        if status == RuleStatus.ACTIVE:
            changed.filter(expires_at__lte=now).update(status=RuleStatus.EXPIRED, updated_at=now)
            changed = changed.exclude(expires_at__lte=now)
        count = changed.update(status=status, updated_at=now)
        publishing.enqueue({row[1] for row in rows})
    return count


def rules_expire_due(now: Any = None) -> list[uuid.UUID]:
    """Mark active rules past ``expires_at`` as expired and republish their projects.
    Cheap when nothing is due (one indexed UPDATE), so list views call it too."""
    now = now or timezone.now()
    with transaction.atomic():
        due = list(BlockingRule.objects.due_to_expire(now).values_list("id", "project_id"))
        if not due:
            return []
        BlockingRule.objects.filter(id__in=[d[0] for d in due], status=RuleStatus.ACTIVE).update(
            status=RuleStatus.EXPIRED, updated_at=now
        )
        publishing.enqueue({d[1] for d in due})
    logger.info("blocking_rules_expired", count=len(due))
    return [d[0] for d in due]
