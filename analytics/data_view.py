"""The one view base of the data endpoints: validate → scope → cache → audit → render.

Each data view names its ``Endpoint`` and hands ``respond`` its input (the JSON body, or
the query string); everything else lives in ``analytics.endpoints``, which saved queries,
dashboards and Celery call directly. It sits below the views modules so that ``geo`` and
``blocking`` need no other app's views.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import orjson
from django.conf import settings
from django.http import HttpResponseBase
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.views import APIView

from analytics.access.audit import AuditedQueryMixin
from analytics.cache import json_response
from analytics.endpoints import NORMAL, Endpoint, answer_validated, validate
from analytics.requests_log.export import capped_lines, export_filename, streaming_response
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
            # A POST's input is its body: the URL carries only ``debug``.
            reject_unknown_params(request, allowed=["debug"])
        else:
            params = {key: value for key, value in params.items() if key != "debug"}
        debug = debug_wanted(request)
        question = validate(self.endpoint, params)
        self.audit_params = question.audit_params
        result = answer_validated(
            question,
            request.user,
            NORMAL,
            page_url=lambda offset: page_link(request, offset),
            debug=debug,
        )
        self.audit_rows = result.rows
        return json_response(request, result.payload, result.cache)

    def respond_export(
        self,
        request: Request,
        params: Mapping[str, Any],
        fmt: str,
        to_rows: Callable[[dict[str, Any]], tuple[list[str], Iterator[list[Any]]]],
    ) -> HttpResponseBase:
        """The answer as a CSV/NDJSON file: the same validation, scope, cache and audit as
        ``respond``, then ``to_rows`` turns the answer's data into lines, streamed."""
        if self.endpoint.method == "POST":
            reject_unknown_params(request)
        question = validate(self.endpoint, params)
        self.audit_params = {**question.audit_params, "format": fmt}
        result = answer_validated(
            question, request.user, NORMAL, page_url=lambda offset: page_link(request, offset)
        )
        header, rows = to_rows(orjson.loads(result.payload)["data"])
        lines, _progress = capped_lines(fmt, header, rows, settings.MAX_EXPORT_ROWS)
        self.audit_rows = result.rows
        response = streaming_response(fmt, lines, export_filename(self.endpoint.name))
        response["X-Export-Row-Cap"] = str(settings.MAX_EXPORT_ROWS)
        return result.cache.apply(response)

    def respond_to_query(self, request: Request) -> HttpResponseBase:
        """For GET endpoints: the query string is the input (``debug`` aside)."""
        return self.respond(request, query_params_data(request.query_params))


class DebugFlagSerializer(serializers.Serializer):
    """The ``debug`` query parameter of every data endpoint (see ``answer_validated``).
    Debug output shows the SQL and the server's plans, so only staff users ever get it
    (``DEBUG_MODE`` only makes it their default); anyone else asking is told so (400)
    rather than silently answered without it."""

    debug = serializers.BooleanField(required=False)

    def validate_debug(self, value: bool) -> bool:
        principal = self.context.get("principal")
        if value and not is_staff(principal):
            raise serializers.ValidationError(
                "Only staff users may ask for debug output; API keys and other users "
                "never get it (leave debug out, or set it to false)."
            )
        return value


def is_staff(principal: Any) -> bool:
    """A Django user with ``is_staff``; an API key's principal never is."""
    return bool(getattr(principal, "is_staff", False))


def debug_wanted(request: Request) -> bool:
    """Whether this request's answer carries ``meta.debug``: ``?debug=`` if given, else,
    for staff, ``DEBUG_MODE``."""
    raw = request.query_params.get("debug")
    flag = DebugFlagSerializer(
        data={} if raw is None else {"debug": raw}, context={"principal": request.user}
    )
    flag.is_valid(raise_exception=True)
    default = settings.DEBUG_MODE and is_staff(request.user)
    return bool(flag.validated_data.get("debug", default))


def page_link(request: Request, offset: int) -> str:
    """This request's URL at another offset (its other parameters as the caller sent them)."""
    query = request.query_params.copy()
    query["offset"] = str(offset)
    return request.build_absolute_uri(request.path) + "?" + query.urlencode()
