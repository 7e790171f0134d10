"""Which projects a caller may read: turns the ``project_ids`` of a request into the
``ProjectScope`` every data query carries (``analytics.query.scope``), or a 403 naming the
projects outside the caller's access list. Superusers, and API clients flagged
``all_projects``, read everything."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from rest_framework import exceptions
from rest_framework.request import Request

from analytics.access.models import ProjectAccess
from analytics.access.principals import client_of
from analytics.query.scope import ProjectScope


def reads_all_projects(principal: Any) -> bool:
    """Superusers and API clients flagged ``all_projects`` read every project."""
    if principal is None or not principal.is_authenticated:
        return False
    client = client_of(principal)
    if client is not None:
        return client.all_projects
    return bool(principal.is_superuser)


def has_all_projects(request: Request) -> bool:
    """``reads_all_projects`` for the request's caller."""
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
    """403 naming the projects the caller asked for but may not read."""

    default_code = "project_access_denied"

    def __init__(self, project_ids: Iterable[uuid.UUID]) -> None:
        names = [str(p) for p in project_ids]
        super().__init__(f"You do not have access to project(s): {', '.join(names)}.")
        self.details = {"project_ids": names}


class NoProjectAccess(exceptions.PermissionDenied):
    """403 for a caller whose access list is empty and who is not allowed every project:
    an empty 200 would read as "no traffic" when the key is merely not set up."""

    default_code = "no_project_access"

    def __init__(self, principal: Any) -> None:
        client = client_of(principal)
        if client is not None:
            message = (
                f"API client {client.name!r} has no project access: add project access rows "
                'for it in the admin, or set its "All projects" flag (for a caller such as '
                "BudApp that checks project membership itself)."
            )
        else:
            message = (
                f"User {principal.get_username()!r} has no project access: add project "
                "access rows for it in the admin."
            )
        super().__init__(message)
        self.details = {"project_ids": []}


def scope_for(principal: Any, requested: Iterable[uuid.UUID | str]) -> ProjectScope:
    """A principal's scope for a data query, with or without a request (saved-query runs,
    dashboards and Celery tasks have only the principal). Superusers (and all-project
    clients): the requested projects or all; others: requested ⊆ access list (else 403
    naming the foreign ones), or the whole access list when none are requested (an empty
    list is a 403 saying so, ``NoProjectAccess``)."""
    if principal is None or not principal.is_authenticated:
        raise exceptions.NotAuthenticated()
    requested_ids = [uuid.UUID(str(p)) for p in requested]
    if reads_all_projects(principal):
        return ProjectScope.only(requested_ids) if requested_ids else ProjectScope.all_projects()
    allowed = set(access_list(principal))
    if not requested_ids:
        if not allowed:
            raise NoProjectAccess(principal)
        return ProjectScope.only(sorted(allowed, key=str))
    denied = sorted({p for p in requested_ids if p not in allowed}, key=str)
    if denied:
        raise ProjectAccessDenied(denied)
    return ProjectScope.only(requested_ids)


def resolve_project_scope(request: Request, requested: list[uuid.UUID]) -> ProjectScope:
    """``scope_for`` the request's caller."""
    return scope_for(getattr(request, "user", None), requested)
