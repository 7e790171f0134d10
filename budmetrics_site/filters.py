"""Unknown query parameters on DRF's generic views (the saved-queries list, blocking-rule
reads) are a 400, like every other endpoint's: a generic view takes only its paginator's
parameters (on lists) and ``format``. Views with their own query serializer validate
those with ``analytics.fields.StrictQueryMixin`` instead."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.filters import BaseFilterBackend
from rest_framework.request import Request
from rest_framework.settings import api_settings

from analytics.fields import unknown_names_error


def paginator_params(view: Any) -> list[str]:
    """The query parameters the view's paginator reads (``page``, ``page_size``, …)."""
    paginator = getattr(view, "paginator", None)
    if paginator is None:
        return []
    names = []
    for attribute in dir(paginator):
        if attribute.endswith("_query_param"):
            value = getattr(paginator, attribute, None)
            if isinstance(value, str) and value:
                names.append(value)
    return names


class StrictQueryParams(BaseFilterBackend):
    """Rejects query parameters the generic view does not read (no filtering otherwise)."""

    def filter_queryset(self, request: Request, queryset: QuerySet, view: Any) -> QuerySet:
        allowed = [api_settings.URL_FORMAT_OVERRIDE or "format"]
        if getattr(view, "action", None) == "list":
            allowed = paginator_params(view) + allowed
        unknown = [key for key in request.query_params if key not in allowed]
        if unknown:
            raise ValidationError(unknown_names_error(unknown, allowed, "parameter"))
        return queryset

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return []  # the paginator documents its own parameters
