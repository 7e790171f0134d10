"""Admin for API clients, project access lists and the (read-only) query audit.

A new or rotated API key is rendered straight into the answer to the POST that made it
(``key_shown.html``): never a redirect with the key in Django's messages (a signed, not
encrypted, cookie), never the session, never a log line."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers

from analytics.access.models import ApiClient, ProjectAccess, QueryAudit

# A staff user who may manage nothing yet is told which group to ask for.
admin.site.index_template = "admin/budmetrics_index.html"


class ClientProjectAccessInline(admin.TabularInline):
    model = ProjectAccess
    fk_name = "api_client"
    fields = ("project_id", "note", "created_at")
    readonly_fields = ("created_at",)
    extra = 1


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "key_prefix",
        "is_active",
        "all_projects",
        "can_manage_blocking_rules",
        "last_used_at",
        "created_at",
    )
    list_filter = ("is_active", "all_projects", "can_manage_blocking_rules")
    search_fields = ("name", "key_prefix")
    readonly_fields = ("key_prefix", "created_at", "last_used_at")
    inlines = (ClientProjectAccessInline,)
    actions = ("rotate_keys",)

    def save_model(
        self, request: HttpRequest, obj: ApiClient, form: ModelForm, change: bool
    ) -> None:
        if not change:
            # Kept on this request object only, for response_add to render.
            request._new_api_keys = [(obj, obj.set_new_key())]  # type: ignore[attr-defined]
        super().save_model(request, obj, form, change)

    def response_add(
        self, request: HttpRequest, obj: ApiClient, post_url_continue: str | None = None
    ) -> HttpResponse:
        keys = getattr(request, "_new_api_keys", None)
        if not keys:
            return super().response_add(request, obj, post_url_continue)
        return self._show_keys_once(request, keys, "API client added")

    @admin.action(description="Rotate the key of the selected clients (old keys stop working)")
    def rotate_keys(self, request: HttpRequest, queryset: QuerySet[ApiClient]) -> HttpResponse:
        keys = []
        for client in queryset:
            key = client.set_new_key()
            client.save(update_fields=["key_prefix", "key_hash"])
            keys.append((client, key))
        return self._show_keys_once(request, keys, "API keys rotated")

    def _show_keys_once(
        self, request: HttpRequest, keys: list[tuple[ApiClient, str]], title: str
    ) -> HttpResponse:
        """The one page that ever shows these keys; not cached by browsers or proxies."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            "keys": keys,
        }
        response = TemplateResponse(request, "admin/analytics/apiclient/key_shown.html", context)
        add_never_cache_headers(response)  # includes no-store
        return response


@admin.register(ProjectAccess)
class ProjectAccessAdmin(admin.ModelAdmin):
    list_display = ("project_id", "user", "api_client", "note", "created_at")
    list_filter = ("api_client",)
    search_fields = ("project_id", "user__username", "api_client__name", "note")
    list_select_related = ("user", "api_client")
    autocomplete_fields = ("user", "api_client")


@admin.register(QueryAudit)
class QueryAuditAdmin(admin.ModelAdmin):
    """Read-only: the audit is written by the API and removed only by ``cleanup_audit``."""

    list_display = (
        "created_at",
        "principal",
        "endpoint",
        "status_code",
        "outcome",
        "duration_ms",
        "rows_returned",
    )
    list_filter = ("endpoint", "outcome", "status_code")
    search_fields = ("principal", "endpoint", "request_id")
    date_hierarchy = "created_at"
    list_select_related = ("user", "api_client")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


from analytics import admin_saved_queries  # noqa: E402,F401 - registers SavedQueryAdmin
