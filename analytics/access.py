"""Who may call the API and which projects they may read; the audit of every data query.

* ``ApiClient``: service clients (BudApp) authenticate with ``Authorization: Bearer <key>``
  or ``X-API-Key: <key>``. Only a prefix (for lookup) and a SHA-256 of the key are stored;
  the plaintext is shown once, when the client is created.
* ``ProjectAccess``: which principal (a Django user or an ApiClient) may read which
  ``project_id``. Superusers, and API clients flagged ``all_projects``, read everything.
* ``scope_for`` (a principal) / ``resolve_project_scope`` (a request): turns ``project_ids``
  into the ``ProjectScope`` every data query carries (``analytics.query``), raising 403
  naming foreign projects.
* ``QueryAudit`` / ``record_query_as`` (a principal) / ``record_query`` (a request): one
  Postgres row and one ``data_query`` log line per data query (who, endpoint, normalised
  parameters, duration, rows, outcome).
* ``ClientRateThrottle``: per-principal request rate on the shared cache (429 + Retry-After).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.core.cache import cache
from django.db import models
from django.db.models import Q
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from analytics.canonical import canonical
from analytics.query.scope import ProjectScope

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


# --- Authentication ------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ApiClientPrincipal:
    """``request.user`` for a key-authenticated request: user-like enough for DRF
    permissions and throttles, and carries the ApiClient for scope resolution."""

    api_client: ApiClient

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False

    @property
    def is_superuser(self) -> bool:
        return False

    @property
    def pk(self) -> str:
        return f"api_client:{self.api_client.pk}"

    id = pk

    @property
    def username(self) -> str:
        return f"api_client:{self.api_client.name}"

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return False

    def __str__(self) -> str:
        return self.username


class ApiKeyAuthentication(BaseAuthentication):
    """``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. No key → next class
    (session); a wrong or revoked key → 401, never a silent anonymous request."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[ApiClientPrincipal, ApiClient] | None:
        key = self._key_from(request)
        if key is None:
            return None
        client = ApiClient.from_key(key)
        if client is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        client.touch()
        return ApiClientPrincipal(client), client

    def _key_from(self, request: Request) -> str | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() == self.keyword.lower():
                value = value.strip()
                if not value or " " in value:
                    raise exceptions.AuthenticationFailed(
                        "Malformed Authorization header; expected 'Bearer <key>'."
                    )
                return value
        key = request.META.get("HTTP_X_API_KEY", "").strip()
        return key or None

    def authenticate_header(self, request: Request) -> str:
        # Present, so DRF answers unauthenticated requests with 401 instead of 403.
        return f'{self.keyword} realm="api"'


def client_of(principal: Any) -> ApiClient | None:
    """The ApiClient behind a principal (``request.user``), or None for a user."""
    return principal.api_client if isinstance(principal, ApiClientPrincipal) else None


def api_client_of(request: Request) -> ApiClient | None:
    return client_of(getattr(request, "user", None))


def label_of(principal: Any) -> str:
    """``user:<username>``, ``api_client:<name>`` or ``anonymous``: how the audit names who."""
    if principal is None or not principal.is_authenticated:
        return "anonymous"
    if isinstance(principal, ApiClientPrincipal):
        return principal.username
    return f"user:{principal.get_username()}"


def principal_label(request: Request) -> str:
    return label_of(getattr(request, "user", None))


def reads_all_projects(principal: Any) -> bool:
    """Superusers and API clients flagged ``all_projects`` read every project."""
    if principal is None or not principal.is_authenticated:
        return False
    client = client_of(principal)
    if client is not None:
        return client.all_projects
    return bool(principal.is_superuser)


def has_all_projects(request: Request) -> bool:
    return reads_all_projects(getattr(request, "user", None))


def access_list(principal: Any) -> list[uuid.UUID]:
    """The projects in a principal's access list (ignores superuser status)."""
    if principal is None or not principal.is_authenticated:
        return []
    client = client_of(principal)
    rows = (
        ProjectAccess.objects.filter(api_client=client)
        if client is not None
        else ProjectAccess.objects.filter(user_id=principal.pk)
    )
    return sorted(set(rows.values_list("project_id", flat=True)), key=str)


def allowed_project_ids(request: Request) -> list[uuid.UUID]:
    """The projects in the caller's access list (ignores superuser status)."""
    return access_list(getattr(request, "user", None))


class ProjectAccessDenied(exceptions.PermissionDenied):
    default_code = "project_access_denied"

    def __init__(self, project_ids: Iterable[uuid.UUID]) -> None:
        names = [str(p) for p in project_ids]
        super().__init__(f"You do not have access to project(s): {', '.join(names)}.")
        self.details = {"project_ids": names}


def scope_for(principal: Any, requested: Iterable[uuid.UUID | str]) -> ProjectScope:
    """A principal's scope for a data query, with or without a request (saved-query runs,
    dashboards and Celery tasks have only the principal). Superusers (and all-project
    clients): the requested projects or all; others: requested ⊆ access list (else 403
    naming the foreign ones), or the whole access list when none are requested (empty →
    no rows)."""
    if principal is None or not principal.is_authenticated:
        raise exceptions.NotAuthenticated()
    requested_ids = [uuid.UUID(str(p)) for p in requested]
    if reads_all_projects(principal):
        return ProjectScope.only(requested_ids) if requested_ids else ProjectScope.all_projects()
    allowed = set(access_list(principal))
    if not requested_ids:
        return ProjectScope.only(sorted(allowed, key=str))
    denied = sorted({p for p in requested_ids if p not in allowed}, key=str)
    if denied:
        raise ProjectAccessDenied(denied)
    return ProjectScope.only(requested_ids)


def resolve_project_scope(request: Request, requested: list[uuid.UUID]) -> ProjectScope:
    """``scope_for`` the request's caller."""
    return scope_for(getattr(request, "user", None), requested)


# --- Audit ---------------------------------------------------------------------------------


def normalise_params(value: Any) -> Any:
    """Parameters as the audit stores them: the shared canonical form
    (``analytics.canonical``, the same one the cache key uses), then made storable, with
    lists of strings sorted so requests that differ only in list order audit alike."""
    return _storable(canonical(value))


def _storable(value: Any) -> Any:
    if isinstance(value, dict):
        return {_text(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [_storable(v) for v in value]
        return sorted(items) if all(isinstance(i, str) for i in items) else items
    return _text(value) if isinstance(value, str) else value


def _text(value: Any) -> str:
    """Postgres text cannot hold NUL; keep the audit row writable whatever a client sent."""
    return str(value).replace("\x00", "\\u0000")[:2000]


def _outcome(status_code: int) -> str:
    if status_code < 400:
        return "ok"
    if status_code in (401, 403):
        return "denied"
    if status_code == 429:
        return "throttled"
    if status_code < 500:
        return "invalid"
    return "error"


def record_query(
    request: Request,
    *,
    endpoint: str,
    params: dict[str, Any],
    duration_ms: float,
    rows: int,
    status_code: int,
) -> None:
    """``record_query_as`` the request's caller, with its request id."""
    request_id = getattr(request, "request_id", "") or getattr(
        getattr(request, "_request", None), "request_id", ""
    )
    record_query_as(
        getattr(request, "user", None),
        endpoint=endpoint,
        params=params,
        duration_ms=duration_ms,
        rows=rows,
        status_code=status_code,
        request_id=str(request_id),
    )


def record_query_as(
    principal: Any,
    *,
    endpoint: str,
    params: dict[str, Any],
    duration_ms: float,
    rows: int,
    status_code: int,
    request_id: str = "",
) -> None:
    """Audit one data query: a ``QueryAudit`` row and a ``data_query`` log line. Only
    validated, normalised parameters are recorded, never raw query strings. Takes the
    principal, not a request, so background answers (saved-query refreshes, dashboard
    warming) are audited the same way."""
    client = client_of(principal)
    normalised = normalise_params(params)
    label = label_of(principal)
    from analytics.audit_writer import writer

    writer.add(
        QueryAudit(
            user_id=principal.pk
            if principal is not None and principal.is_authenticated and client is None
            else None,
            api_client=client,
            principal=label[:200],
            endpoint=endpoint[:100],
            params=normalised,
            duration_ms=round(float(duration_ms), 3),
            rows_returned=int(rows),
            status_code=int(status_code),
            outcome=_outcome(int(status_code)),
            request_id=str(request_id)[:128],
        )
    )
    logger.info(
        "data_query",
        principal=label,
        endpoint=endpoint,
        params=normalised,
        duration_ms=round(float(duration_ms), 2),
        rows=int(rows),
        status_code=int(status_code),
        outcome=_outcome(int(status_code)),
    )


class AuditedQueryMixin:
    """Optional helper for data views: audits every authenticated request, including the
    ones that end in 400/403/429/5xx. The view sets ``audit_params`` (validated input)
    and ``audit_rows`` once it knows them; ``audit_endpoint`` names the endpoint."""

    audit_endpoint: str = ""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        self._audit_started = time.perf_counter()
        self.audit_params: dict[str, Any] = {}
        self.audit_rows = 0
        super().initial(request, *args, **kwargs)  # type: ignore[misc]

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            started = getattr(self, "_audit_started", None)
            record_query(
                request,
                endpoint=self.audit_endpoint or request.path,
                params=getattr(self, "audit_params", {}),
                duration_ms=(time.perf_counter() - started) * 1000 if started else 0.0,
                rows=getattr(self, "audit_rows", 0),
                status_code=response.status_code,
            )
        return response


def audit_cutoff(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(days=settings.AUDIT_RETENTION_DAYS)


def audit_cleanup(now: datetime | None = None) -> int:
    """Delete audit rows older than ``AUDIT_RETENTION_DAYS``; returns how many."""
    deleted, _ = QueryAudit.objects.filter(created_at__lt=audit_cutoff(now)).delete()
    return deleted


# --- Throttling ----------------------------------------------------------------------------


class ClientRateThrottle(SimpleRateThrottle):
    """One bucket per principal (API client, user, or anonymous IP) on the default cache
    (Redis in production, so all web workers share it). Rates come from
    ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` ``client``/``anon`` at request time."""

    scope = "client"

    def __init__(self) -> None:  # the rate depends on the request; see allow_request
        pass

    def allow_request(self, request: Request, view: Any) -> bool:
        user = getattr(request, "user", None)
        self.scope = "client" if user is not None and user.is_authenticated else "anon"
        self.rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        if not self.rate:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        try:
            return super().allow_request(request, view)
        except Exception as exc:  # noqa: BLE001 - a cache outage fails open, never a 500
            logger.warning("throttle_cache_unavailable", error=str(exc)[:200])
            return True

    def get_cache_key(self, request: Request, view: Any) -> str:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            ident = str(user.pk) if isinstance(user, ApiClientPrincipal) else f"user:{user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


# --- Privacy -------------------------------------------------------------------------------


def mask_ip(value: str) -> str:
    """IPv4 → last octet 0 (``203.0.113.7`` → ``203.0.113.0``); IPv6 → its /48
    (``2001:db8:1:2::5`` → ``2001:db8:1::``). Anything else is returned unchanged."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return value
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


def present_ip(value: str | None) -> str | None:
    """An IP for a response: null when unknown, masked when ``ANONYMIZE_IPS`` is on.
    Every endpoint that returns client IPs passes them through here."""
    if not value:
        return None
    return mask_ip(value) if settings.ANONYMIZE_IPS else value


# --- OpenAPI -------------------------------------------------------------------------------


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Documents the two ways to send a key (either one: OR)."""

    target_class = ApiKeyAuthentication
    name = ["ApiKeyBearer", "ApiKeyHeader"]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, Any]]:
        return [
            {
                "type": "http",
                "scheme": "bearer",
                "description": "Authorization: Bearer <API key> (keys are issued in the admin).",
            },
            {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        ]

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[Any]]]:
        return [{"ApiKeyBearer": []}, {"ApiKeyHeader": []}]
