"""Blocking rules (Postgres). The gateway enforces them from Redis (``blocking.publishing``);
ClickHouse rows name the rule that blocked them in ``block_rule_id``."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, router, transaction
from django.db.models import Case, Exists, OuterRef, Q, When
from django.utils import timezone

from blocking import validation
from budmetrics_site.constraints import validate_constraints_readably


class RuleType(models.TextChoices):
    IP_BLOCKING = validation.IP_BLOCKING, "IP blocking"
    COUNTRY_BLOCKING = validation.COUNTRY_BLOCKING, "Country blocking"
    USER_AGENT_BLOCKING = validation.USER_AGENT_BLOCKING, "User-agent blocking"
    RATE_BASED_BLOCKING = validation.RATE_BASED_BLOCKING, "Rate-based blocking"


class RuleStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    INACTIVE = "inactive", "Inactive"
    EXPIRED = "expired", "Expired"


class BlockingRuleQuerySet(models.QuerySet):
    def enforced(self, now: Any = None) -> BlockingRuleQuerySet:
        """Rules the gateway must apply now: active and not past ``expires_at``."""
        now = now or timezone.now()
        return self.filter(status=RuleStatus.ACTIVE).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )

    def due_to_expire(self, now: Any = None) -> BlockingRuleQuerySet:
        return self.filter(status=RuleStatus.ACTIVE, expires_at__lte=now or timezone.now())

    def with_publication(self) -> BlockingRuleQuerySet:
        """Annotate ``publication_pending``: the rule's scope (its project, or global) has a
        change Redis has not acknowledged (``BlockingRuleOutbox``). No query per rule."""
        outbox = BlockingRuleOutbox.objects.all()
        return self.annotate(
            publication_pending=Case(
                When(project_id__isnull=True, then=Exists(outbox.filter(project_id=None))),
                default=Exists(outbox.filter(project_id=OuterRef("project_id"))),
                output_field=models.BooleanField(),
            )
        )


# What to change, in the admin form's terms, when a BlockingRule constraint is violated.
BLOCKING_RULE_MESSAGES = {
    "blocking_rule_unique_name_per_project": "A rule with this name already exists in this "
    "project: change “Name” (or “Project id”).",
    "blocking_rule_unique_global_name": "A global rule (empty “Project id”) with this name "
    "already exists: change “Name”, or set “Project id” to make it a project rule.",
}


class BlockingRule(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    rule_type = models.CharField(max_length=32, choices=RuleType.choices)
    rule_config = models.JSONField(default=dict)
    status = models.CharField(
        max_length=16, choices=RuleStatus.choices, default=RuleStatus.ACTIVE, db_index=True
    )
    reason = models.CharField(
        max_length=200, blank=True, help_text="Recorded by the gateway as block_reason."
    )
    priority = models.IntegerField(
        default=100, help_text="Higher numbers are evaluated first by the gateway."
    )
    project_id = models.UUIDField(
        null=True, blank=True, db_index=True, help_text="Empty: a global rule for every project."
    )
    endpoint_id = models.UUIDField(
        null=True, blank=True, help_text="Empty: every endpoint of the project."
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_by_client = models.ForeignKey(
        "analytics.ApiClient",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = BlockingRuleQuerySet.as_manager()

    class Meta:
        ordering = ("-priority", "name")
        constraints = [
            models.UniqueConstraint(
                fields=["project_id", "name"],
                name="blocking_rule_unique_name_per_project",
                violation_error_message="A rule with this name already exists in this project.",
            ),
            models.UniqueConstraint(
                fields=["name"],
                condition=Q(project_id__isnull=True),
                name="blocking_rule_unique_global_name",
                violation_error_message="A global rule with this name already exists.",
            ),
        ]
        indexes = [models.Index(fields=["status", "expires_at"], name="blocking_rule_expiry")]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Remembered so a move between projects republishes the old project too.
        self._loaded_project_id = self.project_id

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        """One transaction with the outbox row its ``post_save`` receiver writes
        (``blocking.services``): never a stored change without its publication queued."""
        with transaction.atomic(using=kwargs.get("using") or router.db_for_write(type(self))):
            super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        with transaction.atomic(using=kwargs.get("using") or router.db_for_write(type(self))):
            return super().delete(*args, **kwargs)

    @property
    def is_global(self) -> bool:
        return self.project_id is None

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def effective_status(self) -> str:
        """The status the gateway sees: an active rule past its expiry is expired even
        before the expiry job has written it."""
        if self.status == RuleStatus.ACTIVE and self.is_expired:
            return RuleStatus.EXPIRED
        return self.status

    def clean_fields(self, exclude: Any = None) -> None:
        """Validate ``rule_config`` for its type like a field, so forms that edit the
        config through their own fields (the admin) exclude it and report per key."""
        errors: dict[str, list[str]] = {}
        try:
            super().clean_fields(exclude=exclude)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        excluded = set(exclude or ())
        checkable = self.rule_type in validation.VALIDATORS
        if checkable and "rule_config" not in excluded and "rule_config" not in errors:
            try:
                self.rule_config = validation.validate_rule_config(self.rule_type, self.rule_config)
            except ValidationError as exc:
                errors["rule_config"] = [
                    f"{key}: {message}"
                    for key, messages in exc.message_dict.items()
                    for message in messages
                ]
        if errors:
            raise ValidationError(errors)

    def validate_constraints(self, exclude: Any = None) -> None:
        validate_constraints_readably(self, exclude, BLOCKING_RULE_MESSAGES)

    def clean(self) -> None:
        if self.status == RuleStatus.ACTIVE and self.is_expired:
            raise ValidationError({"expires_at": ["An active rule must expire in the future."]})


class BlockingRuleOutbox(models.Model):
    """One scope (a project, or global when ``project_id`` is empty) whose rule set in
    Redis is out of date. Written in the same transaction as the rule change, so a stored
    change always has its publication queued; deleted once Redis acknowledged the scope's
    new rule set (``blocking.publishing.deliver_pending``)."""

    id = models.BigAutoField(primary_key=True)
    project_id = models.UUIDField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ("id",)
        verbose_name = "pending rule publication"

    def __str__(self) -> str:
        return f"{self.project_id or 'global'} (queued {self.created_at:%Y-%m-%d %H:%M:%S})"
