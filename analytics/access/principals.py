"""Who is calling: a Django user, or an ``ApiClientPrincipal`` standing for an API key.
Everything that needs to know which client is behind a request, or how to name the caller
in the audit, asks here rather than inspecting ``request.user`` itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rest_framework.request import Request

from analytics.access.models import ApiClient


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


def client_of(principal: Any) -> ApiClient | None:
    """The ApiClient behind a principal (``request.user``), or None for a user."""
    return principal.api_client if isinstance(principal, ApiClientPrincipal) else None


def api_client_of(request: Request) -> ApiClient | None:
    """``client_of`` the request's caller."""
    return client_of(getattr(request, "user", None))


def label_of(principal: Any) -> str:
    """``user:<username>``, ``api_client:<name>`` or ``anonymous``: how the audit names who."""
    if principal is None or not principal.is_authenticated:
        return "anonymous"
    if isinstance(principal, ApiClientPrincipal):
        return principal.username
    return f"user:{principal.get_username()}"
