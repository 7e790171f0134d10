"""``GET /gateway/dashboards`` (the default views) and ``GET /gateway/dashboards/{view}``
(one view for one project, answered by its endpoint under the caller's access, from the
cache that Celery keeps warm)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.dashboards import VIEWS, run_view
from analytics.fields import StrictQueryMixin
from analytics.saved_queries import ENDPOINTS, origin_of, request_id_of, run_response
from budmetrics_site.filters import reject_unknown_params


class DashboardViewQuerySerializer(StrictQueryMixin, serializers.Serializer):
    project_id = serializers.UUIDField(help_text="The project whose dashboard to show.")


def describe_views() -> list[dict[str, object]]:
    return [
        {
            "name": name,
            "endpoint": view.endpoint,
            "method": ENDPOINTS[view.endpoint].method,
            "time_window": view.window,
            "params": view.params,
            "description": view.description,
        }
        for name, view in VIEWS.items()
    ]


class DashboardListView(APIView):
    @extend_schema(
        operation_id="gateway_dashboards_list",
        summary="The default dashboard views",
        description="Each view is a fixed request to one data endpoint over a relative "
        "window; GET /gateway/dashboards/{view}?project_id=… answers it for one project.",
        responses={
            200: inline_serializer(
                "DashboardViewsResponse",
                {
                    "success": serializers.BooleanField(),
                    "data": inline_serializer(
                        "DashboardViews",
                        {
                            "views": inline_serializer(
                                "DashboardViewDescription",
                                {
                                    "name": serializers.CharField(),
                                    "endpoint": serializers.CharField(),
                                    "method": serializers.CharField(),
                                    "time_window": serializers.CharField(),
                                    "params": serializers.DictField(),
                                    "description": serializers.CharField(),
                                },
                                many=True,
                            )
                        },
                    ),
                },
            )
        },
        tags=["dashboards"],
    )
    def get(self, request: Request) -> Response:
        reject_unknown_params(request)
        return Response({"success": True, "data": {"views": describe_views()}})


class DashboardView(APIView):
    @extend_schema(
        operation_id="gateway_dashboards_view",
        summary="One default dashboard view of one project",
        description="Answers exactly as the view's endpoint would for you (your project "
        "access applies: 403 for a project you cannot read). The window ends on a multiple "
        "of DASHBOARD_REFRESH_INTERVAL and Celery recomputes each active project's views "
        "as it moves on, so reads are normally cache hits (X-Cache: HIT).",
        parameters=[
            OpenApiParameter("view", str, OpenApiParameter.PATH, enum=list(VIEWS)),
            DashboardViewQuerySerializer,
        ],
        responses={200: OpenApiTypes.OBJECT},
        tags=["dashboards"],
    )
    def get(self, request: Request, view: str) -> Response:
        if view not in VIEWS:
            raise NotFound(f"No dashboard view {view!r}; views: {', '.join(VIEWS)}.")
        query = DashboardViewQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        outcome = run_view(
            view,
            query.validated_data["project_id"],
            request.user,
            origin=origin_of(request),
            request_id=request_id_of(request),
        )
        return run_response(request, outcome)
