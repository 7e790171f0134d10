"""``/gateway/saved-queries``: CRUD for the caller's saved queries (and shared ones, read
and run only) and ``POST /gateway/saved-queries/{id}/run``."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view, inline_serializer
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from analytics.access.principals import ApiClientPrincipal
from analytics.fields import StrictModelSerializer
from analytics.saved_queries import (
    ENDPOINTS,
    WINDOWS,
    SavedQuery,
    origin_of,
    request_id_of,
    run_response,
    saved_query_run,
)
from budmetrics_site.filters import reject_body
from budmetrics_site.pagination import EnvelopePagination


class SavedQuerySerializer(StrictModelSerializer):
    endpoint = serializers.ChoiceField(choices=list(ENDPOINTS))
    time_window = serializers.ChoiceField(choices=list(WINDOWS), default="last_24h")
    params = serializers.JSONField(default=dict)
    owner = serializers.SerializerMethodField()

    class Meta:
        model = SavedQuery
        fields = (
            "id",
            "name",
            "owner",
            "endpoint",
            "params",
            "time_window",
            "refresh_interval",
            "is_shared",
            "last_refreshed_at",
            "last_duration_ms",
            "created_at",
            "updated_at",
        )
        read_only_fields = (
            "id",
            "owner",
            "last_refreshed_at",
            "last_duration_ms",
            "created_at",
            "updated_at",
        )

    def get_owner(self, saved: SavedQuery) -> str:
        if saved.owner_client_id:
            return f"api_client:{saved.owner_client.name}"
        return f"user:{saved.owner.get_username()}" if saved.owner_id else ""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        instance = self.instance or SavedQuery()
        for key, value in attrs.items():
            setattr(instance, key, value)
        user = self.context["request"].user
        if isinstance(user, ApiClientPrincipal):
            instance.owner_client = user.api_client
        elif not instance.owner_id:
            instance.owner = user
        try:
            instance.clean()
        except DjangoValidationError as exc:
            raise DRFValidationError(exc.message_dict) from exc
        duplicate = SavedQuery.objects.filter(
            name=instance.name,
            owner_id=instance.owner_id,
            owner_client_id=instance.owner_client_id,
        ).exclude(pk=instance.pk)
        if duplicate.exists():
            raise DRFValidationError({"name": ["You already have a saved query of this name."]})
        attrs["owner"] = instance.owner
        attrs["owner_client"] = instance.owner_client
        return attrs


class SavedQueryResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    data = SavedQuerySerializer()


class SavedQueryDeletedSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    data = inline_serializer("SavedQueryDeletion", {"deleted": serializers.BooleanField()})


def _mine(user: Any) -> Q:
    if isinstance(user, ApiClientPrincipal):
        return Q(owner_client_id=user.api_client.pk)
    return Q(owner_id=user.pk)


@extend_schema_view(
    list=extend_schema(
        summary="Your saved queries and shared ones",
        responses={200: SavedQuerySerializer(many=True)},
        tags=["saved queries"],
    ),
    retrieve=extend_schema(
        summary="One saved query",
        responses={200: SavedQueryResponseSerializer},
        tags=["saved queries"],
    ),
    create=extend_schema(
        summary="Save a query (validated by its endpoint)",
        responses={201: SavedQueryResponseSerializer},
        tags=["saved queries"],
    ),
    update=extend_schema(
        summary="Replace a saved query",
        responses={200: SavedQueryResponseSerializer},
        tags=["saved queries"],
    ),
    partial_update=extend_schema(
        summary="Change a saved query",
        responses={200: SavedQueryResponseSerializer},
        tags=["saved queries"],
    ),
    destroy=extend_schema(
        summary="Delete a saved query",
        responses={200: SavedQueryDeletedSerializer},
        tags=["saved queries"],
    ),
)
class SavedQueryViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = SavedQuerySerializer
    pagination_class = EnvelopePagination
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    def get_queryset(self) -> QuerySet[SavedQuery]:
        user = self.request.user
        return SavedQuery.objects.filter(_mine(user) | Q(is_shared=True)).select_related(
            "owner", "owner_client"
        )

    def get_object(self) -> SavedQuery:
        try:
            # filter_queryset runs the strict query-parameter check of every generic view.
            saved = self.filter_queryset(self.get_queryset()).get(pk=self.kwargs["pk"])
        except (SavedQuery.DoesNotExist, DjangoValidationError) as exc:
            raise NotFound("No saved query with this id is visible to you.") from exc
        if (
            self.request.method not in ("GET", "HEAD", "OPTIONS")
            and self.action != "run"
            and not SavedQuery.objects.filter(_mine(self.request.user), pk=saved.pk).exists()
        ):
            raise PermissionDenied("Only the owner may change or delete a saved query.")
        return saved

    def throttle_projects(self, request: Request) -> list[Any] | None:
        """A run counts against the projects its saved query reads (the throttle's
        fairness unit); other actions name none. Visibility is checked by the run itself."""
        if self.action != "run":
            return None
        try:
            params = SavedQuery.objects.filter(pk=self.kwargs["pk"]).values_list(
                "params", flat=True
            )[:1]
            stored = next(iter(params), None)
        except DjangoValidationError:
            return None
        if not isinstance(stored, dict):
            return []
        named = stored.get("project_ids")
        filters = stored.get("filters")
        if named is None and isinstance(filters, dict):
            named = filters.get("project_id")
        if isinstance(named, str):
            return [named]
        return list(named) if isinstance(named, list) else []

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response({"success": True, "data": self.get_serializer(self.get_object()).data})

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response({"success": True, "data": serializer.data}, status=201)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        partial = kwargs.pop("partial", False)
        serializer = self.get_serializer(self.get_object(), data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response({"success": True, "data": serializer.data})

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        self.get_object().delete()
        return Response({"success": True, "data": {"deleted": True}})

    @extend_schema(
        summary="Run a saved query",
        description="Answers exactly as its endpoint would for you (your project scope), "
        "from cache when fresh; X-Cache tells HIT or MISS.",
        request=None,
        responses={200: OpenApiTypes.OBJECT},
        tags=["saved queries"],
    )
    @action(detail=True, methods=["post"])
    def run(self, request: Request, pk: str | None = None) -> Response:
        reject_body(request)
        saved = self.get_object()
        if not saved.can_run(request.user):
            raise PermissionDenied("This saved query is neither yours nor shared.")
        outcome = saved_query_run(
            saved,
            request.user,
            origin=origin_of(request),
            request_id=request_id_of(request),
        )
        return run_response(request, outcome)
