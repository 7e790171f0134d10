"""One page shape for every list endpoint (blocking rules, saved queries):
``{"success": true, "data": {"count", "page", "page_size", "next", "previous", "results"}}``.

``page`` and ``page_size`` are checked strictly: anything but a whole number in range is a
400 naming the parameter (never silently clamped); a page past the last one is a 404.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.fields import parse_whole_number

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def _whole_number(request: Request, name: str, maximum: int | None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    allowed = f"from 1 to {maximum}" if maximum else "of at least 1"
    value = parse_whole_number(raw) or 0  # the one rule for whole numbers (no " 5", "5.0")
    if value < 1 or (maximum is not None and value > maximum):
        raise serializers.ValidationError({name: [f"Must be a whole number {allowed}."]})
    return value


class EnvelopePagination(PageNumberPagination):
    """Page-number pagination inside the success envelope, with one page-size cap."""

    page_size = DEFAULT_PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def get_page_size(self, request: Request) -> int:
        return _whole_number(request, self.page_size_query_param, MAX_PAGE_SIZE) or self.page_size

    def paginate_queryset(
        self, queryset: QuerySet, request: Request, view: APIView | None = None
    ) -> list[Any] | None:
        _whole_number(request, self.page_query_param, None)
        return super().paginate_queryset(queryset, request, view)

    def get_paginated_response(self, data: list[Any]) -> Response:
        return Response(
            {
                "success": True,
                "data": {
                    "count": self.page.paginator.count,
                    "page": self.page.number,
                    "page_size": self.page.paginator.per_page,
                    "next": self.get_next_link(),
                    "previous": self.get_previous_link(),
                    "results": data,
                },
            }
        )

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        link = {"type": "string", "format": "uri", "nullable": True}
        return {
            "type": "object",
            "required": ["success", "data"],
            "properties": {
                "success": {"type": "boolean", "description": "Always true."},
                "data": {
                    "type": "object",
                    "required": ["count", "page", "page_size", "next", "previous", "results"],
                    "properties": {
                        "count": {"type": "integer", "minimum": 0, "example": 123},
                        "page": {"type": "integer", "minimum": 1, "example": 1},
                        "page_size": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_PAGE_SIZE,
                            "example": DEFAULT_PAGE_SIZE,
                        },
                        "next": {**link, "description": "The next page, null on the last."},
                        "previous": {
                            **link,
                            "description": "The previous page, null on the first.",
                        },
                        "results": schema,
                    },
                },
            },
        }

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        return [
            {
                "name": self.page_query_param,
                "required": False,
                "in": "query",
                "description": "Page number, from 1.",
                "schema": {"type": "integer", "minimum": 1, "default": 1},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"Results per page, at most {MAX_PAGE_SIZE}.",
                "schema": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_PAGE_SIZE,
                    "default": DEFAULT_PAGE_SIZE,
                },
            },
        ]
