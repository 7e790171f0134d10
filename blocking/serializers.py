"""Validation for the blocking API; rule config checks are shared with the admin
(``blocking.validation``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from analytics import fields as shared_fields
from analytics.fields import (
    StorageMetaSerializer,
    StrictChoiceField,
    StrictModelSerializer,
    StrictQueryMixin,
    TimezoneField,
    WholeNumberField,
)
from analytics.query.buckets import auto_bucket, bucket_count
from analytics.window import WindowQuerySerializer
from blocking import publishing, queries, validation
from blocking.models import BlockingRule, RuleStatus, RuleType
from budmetrics_site.openapi import COUNTRY_CODE_PATTERN
from budmetrics_site.pagination import MAX_PAGE_SIZE

MAX_LIMIT = 1000


def _config_schema(title: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "title": title,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _string_list_schema(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "array",
        "items": {"type": "string", **item},
        "minItems": 1,
        "maxItems": validation.MAX_ITEMS,
    }


@extend_schema_field(
    {
        "description": "Per rule_type, exactly one of these shapes (unknown keys are "
        "rejected): ip_blocking takes IPv4/IPv6 addresses or CIDR ranges; country_blocking "
        "ISO 3166-1 alpha-2 codes (stored upper case); user_agent_blocking patterns, "
        "matched as substrings or as RE2-style regexes; rate_based_blocking a request "
        "threshold per window.",
        "oneOf": [
            _config_schema(
                "ip_blocking", {"ip_addresses": _string_list_schema({})}, ["ip_addresses"]
            ),
            _config_schema(
                "country_blocking",
                {"countries": _string_list_schema({"pattern": COUNTRY_CODE_PATTERN})},
                ["countries"],
            ),
            _config_schema(
                "user_agent_blocking",
                {
                    "patterns": _string_list_schema(
                        {"minLength": 1, "maxLength": validation.MAX_PATTERN_LENGTH}
                    ),
                    "match_type": {
                        "type": "string",
                        "enum": list(validation.MATCH_TYPES),
                        "default": "substring",
                    },
                },
                ["patterns"],
            ),
            _config_schema(
                "rate_based_blocking",
                {
                    "threshold": {"type": "integer", "minimum": 1},
                    "window_seconds": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": validation.MAX_WINDOW_SECONDS,
                    },
                },
                ["threshold", "window_seconds"],
            ),
        ],
    }
)
class RuleConfigField(serializers.JSONField):
    pass


PUBLICATION_STATES = ("pending", "published")


class BlockingRuleSerializer(StrictModelSerializer):
    rule_config = RuleConfigField()
    effective_status = serializers.CharField(read_only=True)
    created_by = serializers.SerializerMethodField()
    publication = serializers.SerializerMethodField(
        help_text="published: the gateway's Redis holds this rule's project (or the global) "
        "rule set as stored. pending: a change to that rule set is stored but Redis has not "
        "acknowledged it yet (Redis down, or publishing not configured); the publisher "
        "retries until it has, and the gateway enforces the previous set meanwhile."
    )

    class Meta:
        model = BlockingRule
        fields = (
            "id",
            "name",
            "description",
            "rule_type",
            "rule_config",
            "status",
            "effective_status",
            "reason",
            "priority",
            "project_id",
            "endpoint_id",
            "expires_at",
            "created_by",
            "created_at",
            "updated_at",
            "publication",
        )
        read_only_fields = ("id", "created_at", "updated_at")
        # The model's conditional unique constraints are checked in validate() instead.
        validators: list = []

    @extend_schema_field(serializers.ChoiceField(choices=PUBLICATION_STATES))
    def get_publication(self, rule: BlockingRule) -> str:
        # One outbox query per response, shared by every rule of a list through the context.
        if "pending_publication_scopes" not in self.context:
            self.context["pending_publication_scopes"] = publishing.pending_scopes()
        pending = rule.project_id in self.context["pending_publication_scopes"]
        return "pending" if pending else "published"

    def get_created_by(self, rule: BlockingRule) -> str | None:
        if rule.created_by_id:
            return f"user:{rule.created_by.get_username()}"
        if rule.created_by_client_id:
            return f"api_client:{rule.created_by_client.name}"
        return None

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        instance = self.instance
        merged = {
            field: attrs.get(field, getattr(instance, field, None))
            for field in ("name", "rule_type", "rule_config", "status", "project_id", "expires_at")
        }
        if merged["status"] is None:
            merged["status"] = RuleStatus.ACTIVE
        errors: dict[str, Any] = {}
        if "rule_config" in attrs or "rule_type" in attrs:
            try:
                attrs["rule_config"] = validation.validate_rule_config(
                    merged["rule_type"], merged["rule_config"]
                )
            except DjangoValidationError as exc:
                errors["rule_config"] = exc.message_dict
        expires_at = merged["expires_at"]
        if merged["status"] == RuleStatus.ACTIVE and expires_at and expires_at <= timezone.now():
            errors["expires_at"] = ["An active rule must expire in the future."]
        duplicates = BlockingRule.objects.filter(
            name=merged["name"], project_id=merged["project_id"]
        )
        if instance is not None:
            duplicates = duplicates.exclude(pk=instance.pk)
        if merged["name"] and duplicates.exists():
            where = "globally" if merged["project_id"] is None else "in this project"
            errors["name"] = [f"A rule named {merged['name']!r} already exists {where}."]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class BlockingRuleListQuerySerializer(StrictQueryMixin, serializers.Serializer):
    rule_type = serializers.ChoiceField(choices=RuleType.choices, required=False)
    status = serializers.ChoiceField(choices=RuleStatus.choices, required=False)
    project_id = serializers.UUIDField(required=False)
    scope = serializers.ChoiceField(
        choices=(("global", "global"), ("project", "project")),
        required=False,
        help_text="global: only rules without a project; project: only project rules.",
    )
    search = serializers.CharField(required=False, max_length=200)
    page = serializers.IntegerField(required=False, min_value=1)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=MAX_PAGE_SIZE)


class BlockingStatsQuerySerializer(WindowQuerySerializer):
    """The shared window (start_time/end_time default to the last 7 days, project_ids,
    model_ids, endpoint_ids) plus limit, time_bucket and timezone."""

    limit = WholeNumberField(
        required=False,
        default=50,
        min_value=1,
        max_value=MAX_LIMIT,
        help_text="Maximum entries in blocked_ips, blocking_rules and block_reasons.",
    )
    time_bucket = StrictChoiceField(
        choices=[*queries.BUCKETS, "auto"],
        required=False,
        help_text="Bucket of time_series, aligned to the local clock of `timezone` as in "
        "POST /gateway/analytics; `auto` is the finest bucket giving at most 300 points.",
        error_messages=shared_fields.choice_error("time_bucket"),
    )
    timezone = TimezoneField()
    exact = shared_fields.JsonBooleanField(
        required=False,
        default=False,
        help_text="Read raw rows even where rollups could answer (default false): totals "
        "and time_series from series_15m (15-minute or coarser buckets), blocked_ips, "
        "block_reasons and distinct blocked IPs from blocked_15m. Both give the same "
        "numbers; `data.meta.source` names every storage read. Rule match and targeted "
        "counts always read raw rows.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        start, end = attrs["start_time"], attrs["end_time"]
        bucket = attrs.get("time_bucket") or settings.DEFAULT_TIME_BUCKET
        if bucket == "auto":
            bucket = auto_bucket(start, end)
        points = bucket_count(start, end, bucket)
        if points > settings.MAX_RESULT_SIZE:
            raise serializers.ValidationError(
                {
                    "time_bucket": [
                        f"{bucket} over this range gives {points} buckets, more than "
                        f"{settings.MAX_RESULT_SIZE}; choose a coarser time_bucket."
                    ]
                }
            )
        attrs["time_bucket"] = bucket
        return attrs


# --- Response shapes (documentation and rendering) -----------------------------------------


class BlockedIpSerializer(serializers.Serializer):
    ip_address = serializers.CharField(
        allow_null=True, help_text="Masked (IPv4 /24, IPv6 /48) when ANONYMIZE_IPS is on."
    )
    block_count = serializers.IntegerField()
    reasons = serializers.ListField(child=serializers.CharField())
    first_blocked = shared_fields.FlexibleDateTimeField()
    last_blocked = shared_fields.FlexibleDateTimeField()


class BlockingRuleStatsSerializer(serializers.Serializer):
    rule_id = serializers.UUIDField()
    name = serializers.CharField(allow_null=True, help_text="null when the rule was deleted.")
    rule_type = serializers.ChoiceField(choices=RuleType.choices, allow_null=True)
    status = serializers.ChoiceField(choices=RuleStatus.choices, allow_null=True)
    project_id = serializers.UUIDField(allow_null=True)
    match_count = serializers.IntegerField(help_text="Requests whose block_rule_id is this rule.")
    last_matched = shared_fields.FlexibleDateTimeField(allow_null=True)
    targeted_requests = serializers.IntegerField(
        allow_null=True, help_text="Requests in range matching the rule's targets."
    )
    effectiveness = serializers.FloatField(
        allow_null=True,
        help_text="Among the requests in range that the rule targets (its project unless "
        "global, its endpoint if set, and a client IP in its IPs or CIDRs for ip_blocking, a "
        "country in its list for country_blocking, or a user agent matching one of its "
        "patterns for user_agent_blocking), the fraction that was blocked, by this or any "
        "other rule: 1.0 means none of that traffic got through. Null when nothing in range "
        "was targeted, for rate-based rules (one row cannot show a rate was exceeded) and "
        "for deleted rules.",
    )


class BlockReasonSerializer(serializers.Serializer):
    block_reason = serializers.CharField(allow_null=True)
    count = serializers.IntegerField()


class BlockingTimePointSerializer(serializers.Serializer):
    timestamp = serializers.CharField(
        help_text="Bucket start, ISO 8601 in the request's timezone (Z for UTC)."
    )
    blocked_requests = serializers.IntegerField()
    total_requests = serializers.IntegerField()


class BlockingSummarySerializer(serializers.Serializer):
    total_blocked = serializers.IntegerField()
    total_requests = serializers.IntegerField()
    block_rate = serializers.FloatField(help_text="total_blocked / total_requests (0 when none).")
    unique_blocked_ips = serializers.IntegerField()


class BlockingStatsSerializer(serializers.Serializer):
    start_time = shared_fields.FlexibleDateTimeField()
    end_time = shared_fields.FlexibleDateTimeField()
    time_bucket = serializers.CharField()
    blocked_ips = BlockedIpSerializer(many=True)
    blocking_rules = BlockingRuleStatsSerializer(many=True)
    block_reasons = BlockReasonSerializer(many=True)
    time_series = BlockingTimePointSerializer(many=True)
    summary = BlockingSummarySerializer()
    meta = StorageMetaSerializer()


class BlockingStatsResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    data = BlockingStatsSerializer()


class BlockingRuleResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    data = BlockingRuleSerializer()


class DeletedResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    data = serializers.DictField()
