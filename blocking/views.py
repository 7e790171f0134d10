"""Blocking API: rule CRUD (``/gateway/blocking-rules``) and ``/gateway/blocking-stats``.

Access: everyone authenticated lists and reads the rules of the projects they may read,
plus global rules. Changing a project's rules needs access to that project and the right
to manage rules (superuser; a staff user with the model's add/change/delete permission;
an API client with ``can_manage_blocking_rules``). Global rules (no project) are
read-only except for superusers and all-project API clients that may manage rules.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import Q, QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.viewsets import GenericViewSet

from analytics.access.principals import api_client_of
from analytics.access.scope import ProjectAccessDenied, allowed_project_ids, has_all_projects
from analytics.data_view import EndpointView
from analytics.endpoints import ENDPOINTS
from blocking import publishing, serializers, services
from blocking.models import BlockingRule
from budmetrics_site.filters import reject_unknown_params
from budmetrics_site.pagination import EnvelopePagination

_ACTION_PERMS = {
    "create": "add",
    "update": "change",
    "partial_update": "change",
    "destroy": "delete",
}


def can_manage_rules(request: Request, action: str) -> bool:
    user = request.user
    client = api_client_of(request)
    if client is not None:
        return client.can_manage_blocking_rules
    if user.is_superuser:
        return True
    return bool(user.is_staff and user.has_perm(f"blocking.{_ACTION_PERMS[action]}_blockingrule"))


def check_project_writable(request: Request, project_id: uuid.UUID | None) -> None:
    if project_id is None:
        if not has_all_projects(request):
            raise exceptions.PermissionDenied(
                "Global rules (no project_id) can be changed only by superusers."
            )
        return
    if not has_all_projects(request) and project_id not in set(allowed_project_ids(request)):
        raise ProjectAccessDenied([project_id])


@extend_schema_view(
    list=extend_schema(
        summary="List blocking rules",
        parameters=[serializers.BlockingRuleListQuerySerializer],
        responses={200: serializers.BlockingRuleSerializer(many=True)},
    ),
    retrieve=extend_schema(
        summary="Get a blocking rule",
        responses={200: serializers.BlockingRuleResponseSerializer},
    ),
    create=extend_schema(
        summary="Create a blocking rule",
        responses={201: serializers.BlockingRuleResponseSerializer},
    ),
    update=extend_schema(
        summary="Replace a blocking rule",
        responses={200: serializers.BlockingRuleResponseSerializer},
    ),
    partial_update=extend_schema(
        summary="Change fields of a blocking rule",
        responses={200: serializers.BlockingRuleResponseSerializer},
    ),
    destroy=extend_schema(
        summary="Delete a blocking rule",
        responses={200: serializers.DeletedResponseSerializer},
    ),
)
class BlockingRuleViewSet(GenericViewSet):
    serializer_class = serializers.BlockingRuleSerializer
    pagination_class = EnvelopePagination
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    def get_queryset(self) -> QuerySet[BlockingRule]:
        rules = BlockingRule.objects.select_related("created_by", "created_by_client")
        if has_all_projects(self.request):
            return rules
        allowed = allowed_project_ids(self.request)
        return rules.filter(Q(project_id__in=allowed) | Q(project_id=None))

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        services.rules_expire_due()  # statuses are current whenever someone looks
        if self.action in _ACTION_PERMS and not can_manage_rules(request, self.action):
            raise exceptions.PermissionDenied("You may not manage blocking rules.")

    def list(self, request: Request) -> Response:
        params = serializers.BlockingRuleListQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        filters = params.validated_data
        rules = self.get_queryset()
        if "project_id" in filters:
            if not has_all_projects(request) and filters["project_id"] not in set(
                allowed_project_ids(request)
            ):
                raise ProjectAccessDenied([filters["project_id"]])
            rules = rules.filter(project_id=filters["project_id"])
        if filters.get("scope") == "global":
            rules = rules.filter(project_id=None)
        elif filters.get("scope") == "project":
            rules = rules.exclude(project_id=None)
        for field in ("rule_type", "status"):
            if field in filters:
                rules = rules.filter(**{field: filters[field]})
        if filters.get("search"):
            term = filters["search"]
            rules = rules.filter(
                Q(name__icontains=term) | Q(description__icontains=term) | Q(reason__icontains=term)
            )
        page = self.paginate_queryset(rules.order_by("-priority", "name", "id"))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response({"success": True, "data": self.get_serializer(self.get_object()).data})

    def create(self, request: Request) -> Response:
        reject_unknown_params(request)
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        check_project_writable(request, serializer.validated_data.get("project_id"))
        client = api_client_of(request)
        rule = serializer.save(
            created_by=None if client else request.user, created_by_client=client
        )
        return Response(
            {"success": True, "data": self.get_serializer(rule).data},
            status=status.HTTP_201_CREATED,
        )

    def update(self, request: Request, pk: str, partial: bool = False) -> Response:
        rule = self.get_object()
        check_project_writable(request, rule.project_id)
        serializer = self.get_serializer(rule, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        if "project_id" in serializer.validated_data:
            check_project_writable(request, serializer.validated_data["project_id"])
        rule = serializer.save()
        return Response({"success": True, "data": self.get_serializer(rule).data})

    def partial_update(self, request: Request, pk: str) -> Response:
        return self.update(request, pk, partial=True)

    def destroy(self, request: Request, pk: str) -> Response:
        rule = self.get_object()
        check_project_writable(request, rule.project_id)
        rule_id, project_id = rule.id, rule.project_id
        rule.delete()
        # Whether the gateway has stopped enforcing it yet (see BlockingRuleSerializer).
        pending = project_id in publishing.pending_scopes()
        return Response(
            {
                "success": True,
                "data": {
                    "id": str(rule_id),
                    "deleted": True,
                    "publication": "pending" if pending else "published",
                },
            }
        )


class BlockingStatsView(EndpointView):
    endpoint = ENDPOINTS["blocking-stats"]

    @extend_schema(
        summary="Blocked traffic and blocking-rule statistics",
        description=(
            "Blocked traffic over [start_time, end_time) in the caller's project scope: the "
            "most blocked client IPs, every visible blocking rule with its matches and "
            "effectiveness, block reasons, blocked and total requests per time_bucket, and a "
            "summary. Rule names, types and statuses come from the rule store; a rule seen in "
            "the data but deleted, or belonging to a project outside the scope, is listed "
            "with those fields null. Effectiveness is the share of the requests a rule "
            "targets that were blocked, by it or by any other rule (see the field)."
        ),
        parameters=[serializers.BlockingStatsQuerySerializer],
        responses={200: serializers.BlockingStatsResponseSerializer},
    )
    def get(self, request: Request) -> Response:
        return self.respond_to_query(request)
