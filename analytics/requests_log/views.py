"""``GET /gateway/requests`` (a page, or a streamed CSV/NDJSON export) and
``GET /gateway/requests/{request_id}``: thin views; validation lives in the serializers,
SQL in ``queries`` (through the query package: tenant guard, bound values)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.access.audit import AuditedQueryMixin, record_query
from analytics.access.scope import scope_for
from analytics.query.buckets import format_time
from analytics.requests_log.cursor import caller_of, encode_cursor
from analytics.requests_log.export import (
    EXPORT_RENDERERS,
    ExportBody,
    ExportFormatMixin,
    capped_lines,
    export_filename,
    export_format,
    export_responses,
    format_parameter,
    streaming_response,
)
from analytics.requests_log.queries import (
    RequestLogQuery,
    iter_values,
    request_by_id,
    request_page,
    stream_rows,
)
from analytics.requests_log.serializers import RequestLogQuerySerializer
from analytics.window import query_parameters, query_params_data
from budmetrics_site.filters import reject_unknown_params

RENDERERS = [JSONRenderer, BrowsableAPIRenderer, *EXPORT_RENDERERS]

_PAGE = inline_serializer(
    "RequestLogPage",
    {
        "success": serializers.BooleanField(),
        "data": inline_serializer(
            "RequestLogPageData",
            {
                "requests": serializers.ListField(
                    child=serializers.DictField(), help_text="The rows: the asked fields."
                ),
                "next": serializers.URLField(allow_null=True),
                "limit": serializers.IntegerField(),
                "order": serializers.CharField(),
                "fields": serializers.ListField(child=serializers.CharField()),
                "start_time": serializers.CharField(),
                "end_time": serializers.CharField(),
            },
        ),
    },
)


def request_log_query(data: dict[str, Any], scope: Any) -> RequestLogQuery:
    return RequestLogQuery(
        scope=scope,
        start=data["start_time"],
        end=data["end_time"],
        fields=tuple(data["fields"]),
        order=data["order"],
        model_ids=tuple(data["model_ids"]),
        endpoint_ids=tuple(data["endpoint_ids"]),
        filters=data["filters"],
        after=data["after"],
        drill=data["drill"],
    )


def audit_params(serializer: RequestLogQuerySerializer) -> dict[str, Any]:
    """The validated request as the audit records it (the cursor as its position)."""
    data = serializer.validated_data
    after = data["after"]
    return {
        "start_time": data["start_time"],
        "end_time": data["end_time"],
        "project_ids": data["project_ids"],
        "model_ids": data["model_ids"],
        "endpoint_ids": data["endpoint_ids"],
        "filters": serializer.initial_data.get("filters"),
        "fields": data["fields"],
        "order": data["order"],
        "limit": data["limit"],
        "after": [format_time(after.timestamp), str(after.request_id)] if after else None,
        "drill": repr(data["drill"]) if data["drill"] else None,
    }


class RequestLogView(ExportFormatMixin, AuditedQueryMixin, APIView):
    audit_endpoint = "requests"
    renderer_classes = RENDERERS

    @extend_schema(
        summary="The request log: the rows behind every number",
        description=(
            "Rows of gateway_analytics for your projects over [start_time, end_time), newest "
            "or oldest first, with the analytics filters (`filters`: the POST "
            "/gateway/analytics filter object as JSON text) and a chosen column list. Pages "
            "follow `next` (an opaque signed cursor on timestamp + request_id, bound to this "
            "query and caller: paging is stable while rows arrive); null on the last page. "
            "`time_bucket` + `bucket_start` (+ `timezone`) narrow to one analytics bucket: "
            "see `meta.drilldown` of POST /gateway/analytics. `format=csv|ndjson` streams "
            "every matching row (at most MAX_EXPORT_ROWS, stated in a last line when cut) "
            "as a file. IPs follow ANONYMIZE_IPS."
        ),
        parameters=[*query_parameters(RequestLogQuerySerializer), format_parameter()],
        responses=export_responses(_PAGE),
        tags=["requests"],
    )
    def get(self, request: Request) -> Any:
        fmt = export_format(request)
        serializer = RequestLogQuerySerializer(
            data=query_params_data(request.query_params),
            context={"caller": caller_of(request.user), "export": fmt},
        )
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        self.audit_params = audit_params(serializer)
        scope = scope_for(request.user, data["project_ids"])
        query = request_log_query(data, scope)
        if fmt:
            stated = "limit" not in serializer.initial_data
            return self.export(request, fmt, query, data["limit"], stated=stated)
        page = request_page(query, data["limit"])
        self.audit_rows = len(page.rows)
        next_url = None
        if page.last is not None:
            params = request.query_params.copy()
            params["start_time"] = format_time(data["start_time"])
            params["end_time"] = format_time(data["end_time"])
            params["cursor"] = encode_cursor(page.last, data["query_hash"], caller_of(request.user))
            next_url = request.build_absolute_uri(request.path) + "?" + params.urlencode()
        return Response(
            {
                "success": True,
                "data": {
                    "requests": page.rows,
                    "next": next_url,
                    "limit": data["limit"],
                    "order": data["order"],
                    "fields": data["fields"],
                    "start_time": format_time(data["start_time"]),
                    "end_time": format_time(data["end_time"]),
                },
            }
        )

    def export(
        self, request: Request, fmt: str, query: RequestLogQuery, cap: int, *, stated: bool
    ) -> Any:
        """Stream the rows as ``fmt``; audited when the stream ends, with its row count.
        ``stated``: the cap is MAX_EXPORT_ROWS (no ``limit``), so reaching it is said."""
        stream = stream_rows(query, cap)
        self.audit_deferred = True
        started = time.perf_counter()
        fields = list(query.fields)
        lines, progress = capped_lines(
            fmt, fields, iter_values(stream, fields), cap, trailer=stated
        )

        def audit(rows_sent: int, status: int) -> None:
            record_query(
                request,
                endpoint="requests",
                params={**self.audit_params, "format": fmt, "capped": progress()[1]},
                duration_ms=(time.perf_counter() - started) * 1000,
                rows=rows_sent,
                status_code=status,
            )

        body = ExportBody(lines, stream.close, audit, lambda: progress()[0])
        response = streaming_response(fmt, body, export_filename("requests"))
        response["X-Export-Row-Cap"] = str(cap)
        return response

    def _audit(self, request: Request, status_code: int) -> None:
        if getattr(self, "audit_deferred", False) and status_code < 400:
            return  # the export audits itself when its stream ends
        super()._audit(request, status_code)


class RequestDetailView(AuditedQueryMixin, APIView):
    audit_endpoint = "request"

    @extend_schema(
        summary="One request by id",
        description="Every stored column of one request, if it belongs to a project you "
        "may read (404 otherwise, the same as an unknown id). IPs follow ANONYMIZE_IPS.",
        parameters=[
            OpenApiParameter("request_id", OpenApiTypes.UUID, OpenApiParameter.PATH),
        ],
        responses={200: OpenApiTypes.OBJECT},
        tags=["requests"],
    )
    def get(self, request: Request, request_id: uuid.UUID) -> Response:
        reject_unknown_params(request)
        self.audit_params = {"request_id": str(request_id)}
        row = request_by_id(scope_for(request.user, []), request_id)
        if row is None:
            raise exceptions.NotFound("No such request in the projects you may read.")
        self.audit_rows = 1
        return Response({"success": True, "data": row})
