"""The console's pages and its one data view.

Pages are plain admin templates; their JavaScript asks ``ConsoleDataView`` for data, which
answers through the endpoint registry (``analytics.endpoints.answer_audited``) as the
logged-in staff user: the same validation, project scope, cache and audit as the API, and
byte-for-byte the API's answer. There is no second query path."""

from __future__ import annotations

import zoneinfo
from typing import Any

from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from analytics.access.scope import reads_all_projects
from analytics.dashboards import VIEWS
from analytics.endpoints import ENDPOINTS, answer_audited
from analytics.saved_queries import request_id_of
from console.access import may_use_console, picker_projects

PAGES: dict[str, str] = {
    "overview": "Overview",
    "geography": "Geography",
    "routes": "Top routes",
    "clients": "Clients",
    "blocking": "Blocking",
    "llm": "LLM",
}
TIMEZONES = sorted(zoneinfo.available_timezones())


def forbidden(request: HttpRequest) -> HttpResponse:
    """The admin-styled HTML 403, rendered here so it does not depend on the site's
    error handlers (which answer JSON for the API)."""
    context = {**admin.site.each_context(request), "title": "Permission denied"}
    return render(request, "console/403.html", context, status=403)


def page(request: HttpRequest, name: str = "overview") -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), reverse("admin:login"))
    if not may_use_console(request.user):
        return forbidden(request)
    projects = picker_projects(request.user)
    context = {
        **admin.site.each_context(request),
        "title": f"Traffic: {PAGES[name]}",
        "page": name,
        "pages": [
            (key, label, reverse("console:page", args=[key])) for key, label in PAGES.items()
        ],
        "projects": projects,
        "reads_all": reads_all_projects(request.user),
        "timezones": TIMEZONES,
        "config": {
            "page": name,
            "dataUrl": reverse("console:overview") + "data/",
            "ruleUrl": reverse("admin:blocking_blockingrule_change", args=["RULE"]),
            # The LLM page asks what the default "llm" dashboard view asks (one definition).
            "llmParams": {k: v for k, v in VIEWS["llm"].params.items() if k != "time_bucket"},
        },
    }
    return render(request, "console/page.html", context)


class ConsolePermission(BasePermission):
    message = "The traffic console needs the permission console.view_traffic_console."

    def has_permission(self, request: Request, view: Any) -> bool:
        return may_use_console(request.user)


class ConsoleDataView(APIView):
    """POST ``{params}`` → the endpoint's answer for the staff user. Session auth only
    (DRF enforces CSRF on it); the body is the params an API caller would send."""

    authentication_classes = [SessionAuthentication]
    permission_classes = [ConsolePermission]
    schema = None  # an admin page's helper, not part of the API contract (/api/schema/)

    def post(self, request: Request, endpoint: str) -> HttpResponse:
        result = answer_audited(
            ENDPOINTS[endpoint], request.data, request.user, request_id=request_id_of(request)
        )
        return HttpResponse(result.payload, content_type="application/json")
