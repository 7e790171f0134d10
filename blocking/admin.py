"""Admin for blocking rules: the config is edited through per-type fields (one IP per
line, country codes, patterns, rate) instead of raw JSON, and each problem is shown on
the field it belongs to. Saving queues the rule's publication in the same transaction
(``blocking.services`` signals, ``blocking.publishing``); each rule shows whether Redis has
it yet, and every blocking-rule page says when publishing is off or behind."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from rest_framework.exceptions import APIException

from analytics.query import system
from blocking import publishing, services, validation
from blocking.models import BlockingRule, RuleStatus
from console import admin_charts

# How often the retry job delivers pending publications (budmetrics_site/celery.py).
PUBLICATION_RETRY_SECONDS = 10

# Form fields per rule type; every fieldset is shown and each help text names its type.
CONFIG_FIELDS = {
    validation.IP_BLOCKING: ("ip_addresses",),
    validation.COUNTRY_BLOCKING: ("countries",),
    validation.USER_AGENT_BLOCKING: ("patterns", "match_type"),
    validation.RATE_BASED_BLOCKING: ("threshold", "window_seconds"),
}


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


class BlockingRuleForm(forms.ModelForm):
    ip_addresses = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text="IP blocking: one IPv4/IPv6 address or CIDR range per line.",
    )
    countries = forms.CharField(
        required=False,
        help_text="Country blocking: ISO 3166-1 alpha-2 codes separated by commas or spaces.",
    )
    patterns = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="User-agent blocking: one pattern per line.",
    )
    match_type = forms.ChoiceField(
        required=False,
        choices=[(m, m) for m in validation.MATCH_TYPES],
        help_text="User-agent blocking: substring (case-sensitive) or regex.",
    )
    threshold = forms.IntegerField(
        required=False, help_text="Rate-based blocking: requests allowed per window."
    )
    window_seconds = forms.IntegerField(
        required=False, help_text="Rate-based blocking: window length in seconds."
    )

    class Meta:
        model = BlockingRule
        fields = (
            "name",
            "description",
            "rule_type",
            "status",
            "reason",
            "priority",
            "project_id",
            "endpoint_id",
            "expires_at",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        config = self.instance.rule_config or {}
        self.fields["match_type"].initial = config.get("match_type", "substring")
        if "ip_addresses" in config:
            self.fields["ip_addresses"].initial = "\n".join(config["ip_addresses"])
        if "countries" in config:
            self.fields["countries"].initial = ", ".join(config["countries"])
        if "patterns" in config:
            self.fields["patterns"].initial = "\n".join(config["patterns"])
        for key in ("threshold", "window_seconds"):
            if key in config:
                self.fields[key].initial = config[key]

    def _config_from_fields(self, rule_type: str) -> dict[str, Any]:
        data = self.cleaned_data
        if rule_type == validation.IP_BLOCKING:
            return {"ip_addresses": _lines(data.get("ip_addresses") or "")}
        if rule_type == validation.COUNTRY_BLOCKING:
            raw = (data.get("countries") or "").replace(",", " ")
            return {"countries": raw.split()}
        if rule_type == validation.USER_AGENT_BLOCKING:
            patterns = [p for p in (data.get("patterns") or "").splitlines() if p.strip()]
            return {"patterns": patterns, "match_type": data.get("match_type") or "substring"}
        config: dict[str, Any] = {}
        for key in ("threshold", "window_seconds"):
            if data.get(key) is not None:
                config[key] = data[key]
        return config

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        rule_type = cleaned.get("rule_type")
        if rule_type not in CONFIG_FIELDS:
            return cleaned
        try:
            self.instance.rule_config = validation.validate_rule_config(
                rule_type, self._config_from_fields(rule_type)
            )
        except ValidationError as exc:
            for key, problems in exc.message_dict.items():
                field = key if key in self.fields else None
                for problem in problems:
                    self.add_error(field, problem)
        return cleaned


@admin.register(BlockingRule)
class BlockingRuleAdmin(admin.ModelAdmin):
    form = BlockingRuleForm
    list_display = (
        "name",
        "rule_type",
        "status",
        "project_id",
        "endpoint_id",
        "priority",
        "expires_at",
        "updated_at",
        "publication",
    )
    list_filter = ("rule_type", "status", ("project_id", admin.EmptyFieldListFilter))
    search_fields = ("name", "description", "reason", "=project_id", "=id")
    list_select_related = ("created_by",)
    actions = ("activate", "deactivate")
    readonly_fields = (
        "id",
        "created_by",
        "created_at",
        "updated_at",
        "recent_matches",
        "publication",
        "matches_chart",
    )
    fieldsets = (
        (None, {"fields": ("id", "name", "description", "rule_type", "status", "reason")}),
        ("Scope", {"fields": ("project_id", "endpoint_id", "priority", "expires_at")}),
        ("IP blocking", {"fields": ("ip_addresses",)}),
        ("Country blocking", {"fields": ("countries",)}),
        ("User-agent blocking", {"fields": ("patterns", "match_type")}),
        ("Rate-based blocking", {"fields": ("threshold", "window_seconds")}),
        (
            "Activity",
            {
                "fields": (
                    "publication",
                    "recent_matches",
                    "matches_chart",
                    "created_by",
                    "created_at",
                    "updated_at",
                )
            },
        ),
    )

    class Media:
        js = admin_charts.CHART_JS

    def get_queryset(self, request: HttpRequest) -> QuerySet[BlockingRule]:
        services.rules_expire_due()  # statuses are current whenever staff look
        return super().get_queryset(request).with_publication()

    def _with_publication_banner(self, extra_context: dict[str, Any] | None) -> dict[str, Any]:
        """The banner of every blocking-rule page: publishing off, or changes waiting."""
        return {
            **(extra_context or {}),
            "publication_backlog": publishing.backlog(),
            "publication_retry_seconds": PUBLICATION_RETRY_SECONDS,
        }

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return super().changelist_view(request, self._with_publication_banner(extra_context))

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        return super().changeform_view(
            request, object_id, form_url, self._with_publication_banner(extra_context)
        )

    @admin.display(description="Publication")
    def publication(self, obj: BlockingRule) -> str:
        """published: the gateway's Redis has the rule's rule set as stored; pending: not
        yet (retried until Redis acknowledges)."""
        if obj is None or obj._state.adding:
            return "—"
        pending = getattr(obj, "publication_pending", None)
        if pending is None:
            pending = obj.project_id in publishing.pending_scopes()
        return "pending" if pending else "published"

    def save_model(
        self, request: HttpRequest, obj: BlockingRule, form: forms.ModelForm, change: bool
    ) -> None:
        if not change and obj.created_by_id is None:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    @admin.display(description="Matches (ClickHouse)")
    def recent_matches(self, obj: BlockingRule) -> str:
        if obj is None or obj._state.adding:
            return "—"
        hours = settings.BLOCKING_RULE_MATCH_WINDOW_HOURS
        end = timezone.now() + timedelta(seconds=1)
        try:
            count = system.rule_match_count(obj.id, end - timedelta(hours=hours), end)
        except APIException as exc:
            return f"unavailable ({exc.detail})"
        return f"{count} in the last {hours} hours"

    @admin.display(description=f"Matches per day, last {admin_charts.RULE_DAYS} days (UTC)")
    def matches_chart(self, obj: BlockingRule) -> str:
        if obj is None or obj._state.adding:
            return "—"
        try:
            return admin_charts.rule_matches_chart(obj.id)
        except APIException as exc:
            return f"unavailable ({exc.detail})"

    @admin.action(description="Activate selected rules")
    def activate(self, request: HttpRequest, queryset: QuerySet[BlockingRule]) -> None:
        changed = services.rules_set_status(queryset, RuleStatus.ACTIVE)
        self.message_user(request, f"Activated {changed} rule(s).", messages.SUCCESS)

    @admin.action(description="Deactivate selected rules")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[BlockingRule]) -> None:
        changed = services.rules_set_status(queryset, RuleStatus.INACTIVE)
        self.message_user(request, f"Deactivated {changed} rule(s).", messages.SUCCESS)
