"""The one view base of the data endpoints: validate → scope → cache → audit → render.

Each data view names its ``Endpoint`` and hands ``respond`` its input (the JSON body, or
the query string); everything else lives in ``analytics.endpoints``, which saved queries,
dashboards and Celery call directly. It sits below the views modules so that ``geo`` and
``blocking`` need no other app's views.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from django.http import HttpResponseBase
from rest_framework.request import Request
from rest_framework.views import APIView

from analytics.access.audit import AuditedQueryMixin
from analytics.cache import json_response
from analytics.endpoints import NORMAL, Endpoint, answer_validated, validate
from analytics.window import query_params_data
from budmetrics_site.filters import reject_unknown_params


class EndpointView(AuditedQueryMixin, APIView):
    """A data endpoint over HTTP: the caller's principal, the normal cache policy, the
    audit of every authenticated request (``AuditedQueryMixin``, which records the
    outcome after DRF's exception handler has chosen the status)."""

    endpoint: ClassVar[Endpoint]

    @property
    def audit_endpoint(self) -> str:  # type: ignore[override]
        return self.endpoint.name

    def respond(self, request: Request, params: Mapping[str, Any]) -> HttpResponseBase:
        if self.endpoint.method == "POST":
            reject_unknown_params(request)  # a POST's input is its body: the URL carries none
        question = validate(self.endpoint, params)
        self.audit_params = question.audit_params
        result = answer_validated(
            question, request.user, NORMAL, page_url=lambda offset: page_link(request, offset)
        )
        self.audit_rows = result.rows
        return json_response(request, result.payload, result.cache)

    def respond_to_query(self, request: Request) -> HttpResponseBase:
        """For GET endpoints: the query string is the input."""
        return self.respond(request, query_params_data(request.query_params))


def page_link(request: Request, offset: int) -> str:
    """This request's URL at another offset (its other parameters as the caller sent them)."""
    query = request.query_params.copy()
    query["offset"] = str(offset)
    return request.build_absolute_uri(request.path) + "?" + query.urlencode()
