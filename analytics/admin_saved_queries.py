"""Admin for saved queries (imported by analytics/admin.py)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import path, reverse
from django.utils.safestring import SafeString
from rest_framework.exceptions import APIException

from analytics.saved_queries import SavedQuery, saved_query_refresh
from console import admin_charts


@admin.register(SavedQuery)
class SavedQueryAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "endpoint",
        "time_window",
        "refresh_interval",
        "is_shared",
        "owner",
        "owner_client",
        "last_refreshed_at",
        "last_duration_ms",
    )
    list_filter = ("endpoint", "time_window", "is_shared")
    search_fields = ("name",)
    list_select_related = ("owner", "owner_client")
    readonly_fields = (
        "params_form",
        "last_refreshed_at",
        "last_duration_ms",
        "created_at",
        "updated_at",
    )
    actions = ("refresh_now",)

    class Media:
        js = admin_charts.CHART_JS

    def get_urls(self) -> list[Any]:
        preview = self.admin_site.admin_view(self.preview_view)
        return [
            path("preview/", preview, name="analytics_savedquery_preview"),
            *super().get_urls(),
        ]

    def preview_view(self, request: HttpRequest) -> Any:
        """Runs the form's (unsaved) query as the staff user: ``admin_charts``."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        return admin_charts.saved_query_preview(request)

    @admin.display(description="Params form and preview")
    def params_form(self, obj: SavedQuery | None) -> SafeString:
        return admin_charts.saved_query_editor(reverse("admin:analytics_savedquery_preview"))

    @admin.action(description="Refresh the cache for the selected saved queries now")
    def refresh_now(self, request: HttpRequest, queryset: QuerySet[SavedQuery]) -> None:
        ok, failed = 0, []
        for saved in queryset.select_related("owner", "owner_client"):
            try:
                saved_query_refresh(saved)
            except APIException as exc:  # shown to the admin; one failure skips one query
                failed.append(f"{saved.name}: {exc.detail}")
                continue
            ok += 1
        messages.info(request, f"Refreshed {ok} of {queryset.count()} saved queries.")
        for failure in failed:
            messages.warning(request, failure)
