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


def reject_unknown_params(request: Request, allowed: list[str] | tuple[str, ...] = ()) -> None:
    """A 400 naming each query parameter outside ``allowed`` (plus DRF's ``format``), for
    views without a query serializer."""
    names = [*allowed, api_settings.URL_FORMAT_OVERRIDE or "format"]
    unknown = [key for key in request.query_params if key not in names]
    if unknown:
        raise ValidationError(unknown_names_error(unknown, names, "parameter"))


def reject_body(request: Request) -> None:
    """A 400 for an operation that takes no body but was sent one (its fields would
    otherwise be silently ignored)."""
    data = request.data
    if isinstance(data, dict) and data:
        raise ValidationError(unknown_names_error(data.keys(), [], "field"))
    if data and not isinstance(data, dict):
        raise ValidationError({"non_field_errors": ["This operation takes no request body."]})


class StrictQueryParams(BaseFilterBackend):
    """Rejects query parameters the generic view does not read (no filtering otherwise)."""

    def filter_queryset(self, request: Request, queryset: QuerySet, view: Any) -> QuerySet:
        allowed = paginator_params(view) if getattr(view, "action", None) == "list" else []
        reject_unknown_params(request, allowed)
        return queryset

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return []  # the paginator documents its own parameters
