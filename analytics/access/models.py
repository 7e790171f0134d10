"""The access tables in Postgres: API clients (keys), project access lists and the query
audit. Django finds them through ``analytics.models``; key lookups are cached on the
shared cache and forgotten whenever a client is saved or deleted through Django."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import timedelta
from typing import Any

import structlog
from django.conf import settings
from django.core.cache import cache
from django.db import models
from django.db.models import Q
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from budmetrics_site.constraints import validate_constraints_readably

logger = structlog.get_logger(__name__)

KEY_PREFIX_MARKER = "bm_"
_PREFIX_BYTES = 4  # 8 hex characters: enough to make lookups unique in practice
_SECRET_BYTES = 32
LAST_USED_WRITE_INTERVAL = timedelta(minutes=1)


def _hash_key(key: str) -> str:
    """SHA-256 is enough here: the key carries 256 random bits, so there is nothing for a
    slow password hash to protect against, and it keeps per-request auth cheap."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiClient(models.Model):
    """A service that calls the API with a key (BudApp, scripts)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True)
    key_prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    is_active = models.BooleanField(default=True)
    all_projects = models.BooleanField(
        default=False,
        help_text="May read every project, like a superuser (for BudApp, which checks "
        "project membership itself). Otherwise only the projects in its access list.",
    )
    can_manage_blocking_rules = models.BooleanField(
        default=False,
        help_text="May create, change and delete blocking rules of the projects it can read.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        app_label = "analytics"
        verbose_name = "API client"
        verbose_name_plural = "API clients"
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name

    @classmethod
    def create_with_key(cls, name: str, **fields: Any) -> tuple[ApiClient, str]:
        """Create a client and return it with its plaintext key, which is not stored and
        cannot be shown again."""
        client = cls(name=name, **fields)
        key = client.set_new_key()
        client.save()
        return client, key

    def set_new_key(self) -> str:
        """Replace the key (rotation); the caller saves. Returns the plaintext key."""
        if self.key_prefix:
            self._replaced_prefix = self.key_prefix  # forgotten by the cache on save
        prefix = secrets.token_hex(_PREFIX_BYTES)
        key = f"{KEY_PREFIX_MARKER}{prefix}_{secrets.token_urlsafe(_SECRET_BYTES)}"
        self.key_prefix = prefix
        self.key_hash = _hash_key(key)
        return key

    @classmethod
    def from_key(cls, key: str) -> ApiClient | None:
        """The active client owning ``key``, or None."""
        parts = key.split("_", 2)
        if len(parts) != 3 or f"{parts[0]}_" != KEY_PREFIX_MARKER or not parts[1]:
            return None
        client = _cache_get(_client_cache_key(parts[1]))
        if client is None:
            client = cls.objects.filter(key_prefix=parts[1], is_active=True).first()
            if client is not None:
                _cache_set(_client_cache_key(client.key_prefix), client)
        if client is None or not hmac.compare_digest(client.key_hash, _hash_key(key)):
            return None
        return client

    def touch(self) -> None:
        """Record use, at most once a minute so auth does not write on every request."""
        now = timezone.now()
        if self.last_used_at and now - self.last_used_at < LAST_USED_WRITE_INTERVAL:
            return
        type(self).objects.filter(pk=self.pk).update(last_used_at=now)
        self.last_used_at = now
        # Re-read on the next request rather than re-cache this copy, which could be
        # outdated by a change saved meanwhile (deactivation, rotation).
        self.forget_cached()

    def forget_cached(self) -> None:
        """Drop this client from the lookup cache (its current and any replaced prefix)."""
        prefixes = {self.key_prefix, getattr(self, "_replaced_prefix", "")} - {""}
        try:
            cache.delete_many([_client_cache_key(p) for p in prefixes])
        except Exception as exc:  # noqa: BLE001 - the entry expires by itself
            logger.warning("api_client_cache_forget_failed", error=str(exc)[:200])


# Key lookups are cached on the shared cache, so a hit costs no SQL. Saving or deleting a
# client through Django (admin, API, ORM) forgets its entry at once, so deactivation and
# rotation apply immediately; a change made behind Django's back (raw SQL, bulk update())
# applies within API_CLIENT_CACHE_SECONDS.
API_CLIENT_CACHE_SECONDS = 60


def _client_cache_key(prefix: str) -> str:
    return f"api-client:{prefix}"


def _cache_get(key: str) -> Any:
    try:
        return cache.get(key)
    except Exception as exc:  # noqa: BLE001 - an outage falls back to the database
        logger.warning("cache_unavailable", operation="get", error=str(exc)[:200])
        return None


def _cache_set(key: str, value: Any) -> None:
    try:
        cache.set(key, value, timeout=API_CLIENT_CACHE_SECONDS)
    except Exception as exc:  # noqa: BLE001 - the lookup still worked
        logger.warning("cache_unavailable", operation="set", error=str(exc)[:200])


@receiver(post_save, sender=ApiClient)
@receiver(post_delete, sender=ApiClient)
def _forget_cached_client(sender: type, instance: ApiClient, **kwargs: Any) -> None:
    instance.forget_cached()


class ProjectAccess(models.Model):
    """One principal (user xor API client) may read one project."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="project_access",
    )
    api_client = models.ForeignKey(
        ApiClient, null=True, blank=True, on_delete=models.CASCADE, related_name="project_access"
    )
    project_id = models.UUIDField(db_index=True)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "analytics"
        verbose_name = "project access"
        verbose_name_plural = "project access"
        constraints = [
            models.CheckConstraint(
                condition=(Q(user__isnull=False) & Q(api_client__isnull=True))
                | (Q(user__isnull=True) & Q(api_client__isnull=False)),
                name="project_access_one_principal",
                violation_error_message="Choose either a user or an API client, not both.",
            ),
            models.UniqueConstraint(
                fields=["user", "project_id"],
                condition=Q(user__isnull=False),
                name="project_access_unique_user_project",
                violation_error_message="This user already has access to this project.",
            ),
            models.UniqueConstraint(
                fields=["api_client", "project_id"],
                condition=Q(api_client__isnull=False),
                name="project_access_unique_client_project",
                violation_error_message="This API client already has access to this project.",
            ),
        ]

    def __str__(self) -> str:
        who = self.user if self.user_id else self.api_client
        return f"{who} → {self.project_id}"

    def validate_constraints(self, exclude: Any = None) -> None:
        validate_constraints_readably(self, exclude, PROJECT_ACCESS_MESSAGES)


# What to change, in the admin form's terms, when a ProjectAccess constraint is violated.
PROJECT_ACCESS_MESSAGES = {
    "project_access_one_principal": "Fill in exactly one of “User” and “Api client” (who "
    "may read the project): not both, and not neither.",
    "project_access_unique_user_project": "This user already has access to this project: "
    "change “User” or “Project id”, or edit the existing entry.",
    "project_access_unique_client_project": "This API client already has access to this "
    "project: change “Api client” or “Project id”, or edit the existing entry.",
}


class QueryAudit(models.Model):
    """One data request: who asked what, how long it took, what came back."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    api_client = models.ForeignKey(
        ApiClient, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    principal = models.CharField(max_length=200, help_text="user:<username> or api_client:<name>")
    endpoint = models.CharField(max_length=100, db_index=True)
    params = models.JSONField(default=dict)
    duration_ms = models.FloatField()
    rows_returned = models.IntegerField()
    status_code = models.PositiveSmallIntegerField()
    outcome = models.CharField(max_length=20)
    request_id = models.CharField(max_length=128, blank=True)

    class Meta:
        app_label = "analytics"
        verbose_name = "query audit entry"
        verbose_name_plural = "query audit"
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.principal} {self.endpoint}"
