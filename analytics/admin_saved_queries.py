"""Admin for saved queries (imported by analytics/admin.py)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from rest_framework.exceptions import APIException

from analytics.saved_queries import SavedQuery, saved_query_refresh


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
    readonly_fields = ("last_refreshed_at", "last_duration_ms", "created_at", "updated_at")
    actions = ("refresh_now",)

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
