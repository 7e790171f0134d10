"""``GET /gateway/requests`` (a page, or a streamed CSV/NDJSON export) and
``GET /gateway/requests/{request_id}``: thin views; validation lives in the serializers,
SQL in ``queries`` (through the query package: tenant guard, bound values)."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import exceptions, serializers
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.access.audit import AuditedQueryMixin, record_query
from analytics.access.principals import client_of
from analytics.access.scope import scope_for
from analytics.data_view import debug_wanted
from analytics.endpoints import form_data
from analytics.query.buckets import format_time
from analytics.query.trace import tracing
from analytics.requests_log import jobs
from analytics.requests_log.cursor import caller_of, encode_cursor
from analytics.requests_log.export import (
    CONTENT_TYPES,
    EXPORT_RENDERERS,
    ExportBody,
    ExportFormatMixin,
    capped_lines,
    export_filename,
    export_format,
    export_responses,
    format_parameter,
    request_log_cells,
    streaming_response,
)
from analytics.requests_log.jobs import ExportJob, download_token, token_valid
from analytics.requests_log.queries import (
    RequestLogQuery,
    iter_values,
    request_by_id,
    request_log_query,
    request_page,
    stream_rows,
)
from analytics.requests_log.serializers import (
    EXPORT_FORMATS,
    ExportRequestSerializer,
    RequestLogQuerySerializer,
)
from analytics.tasks import run_export
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
        operation_id="gateway_requests_list",
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
        debug = debug_wanted(request)
        params = query_params_data(request.query_params)
        params.pop("debug", None)
        serializer = RequestLogQuerySerializer(
            data=params,
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
        with tracing(debug=debug) as trace:
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
                "meta": trace.meta(),
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
            fmt,
            fields,
            iter_values(stream, fields),
            cap,
            trailer=stated,
            cells=request_log_cells(fields),
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
        operation_id="gateway_request_retrieve",
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
        reject_unknown_params(request, allowed=["debug"])
        debug = debug_wanted(request)
        self.audit_params = {"request_id": str(request_id)}
        with tracing(debug=debug) as trace:
            row = request_by_id(scope_for(request.user, []), request_id)
        if row is None:
            raise exceptions.NotFound("No such request in the projects you may read.")
        self.audit_rows = 1
        return Response({"success": True, "data": row, "meta": trace.meta()})


# --- background exports -----------------------------------------------------------------------

_JOB = inline_serializer(
    "ExportJobEnvelope",
    {
        "success": serializers.BooleanField(),
        "data": inline_serializer(
            "ExportJob",
            {
                "id": serializers.UUIDField(),
                "status": serializers.CharField(
                    help_text="queued, running, done, failed or expired."
                ),
                "format": serializers.ChoiceField(choices=list(EXPORT_FORMATS)),
                "rows_written": serializers.IntegerField(),
                "rows_total": serializers.IntegerField(allow_null=True),
                "progress": serializers.FloatField(allow_null=True),
                "capped": serializers.BooleanField(),
                "error": serializers.CharField(allow_null=True),
                "created_at": serializers.DateTimeField(),
                "finished_at": serializers.DateTimeField(allow_null=True),
                "expires_at": serializers.DateTimeField(allow_null=True),
                "status_url": serializers.URLField(),
                "download_url": serializers.URLField(allow_null=True),
                "download_expires_at": serializers.DateTimeField(allow_null=True),
            },
        ),
    },
)
_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH)


def _time(value: Any) -> str | None:
    return format_time(value) if value else None


def job_data(request: Request, job: ExportJob) -> dict[str, Any]:
    """A job as its owner sees it; a finished one with a fresh, time-limited download link."""
    status_url = request.build_absolute_uri(reverse("gateway-export", args=[job.pk]))
    download_url = download_expires = None
    if job.status == ExportJob.DONE and job.path.exists():
        query = urlencode({"token": download_token(job)})
        download_url = (
            request.build_absolute_uri(reverse("gateway-export-download", args=[job.pk]))
            + "?"
            + query
        )
        download_expires = format_time(jobs.now() + timedelta(seconds=settings.EXPORT_LINK_SECONDS))
    return {
        "id": str(job.pk),
        "status": job.status,
        "format": job.format,
        "rows_written": job.rows_written,
        "rows_total": job.rows_total,
        "progress": job.progress,
        "capped": job.capped,
        "error": job.error or None,
        "created_at": _time(job.created_at),
        "finished_at": _time(job.finished_at),
        "expires_at": _time(job.expires_at),
        "status_url": status_url,
        "download_url": download_url,
        "download_expires_at": download_expires,
    }


def _owned_job(request: Request, job_id: uuid.UUID) -> ExportJob:
    job = ExportJob.objects.filter(jobs.owned_by(request.user), pk=job_id).first()
    if job is None:
        raise exceptions.NotFound("No such export of yours.")
    return job


class ExportListView(AuditedQueryMixin, APIView):
    audit_endpoint = "exports"

    @extend_schema(
        summary="Start a background export of the request log",
        description=(
            "Queues a Celery job writing every row of the GET /gateway/requests query in "
            "`query` (its parameters: start_time, filters, fields, …) as CSV or NDJSON, "
            "at most MAX_EXPORT_ROWS rows, into EXPORT_DIR. The query is validated and "
            "scoped now (400/403 here), and again when the job runs. Poll `status_url`; "
            "a finished job has a download link valid EXPORT_LINK_SECONDS, and its file "
            "is deleted after EXPORT_RETENTION_HOURS. With embedded chDB the job runs in "
            "this request, so the answer already shows it finished."
        ),
        request=ExportRequestSerializer,
        responses={202: _JOB},
        tags=["requests"],
    )
    def post(self, request: Request) -> Response:
        reject_unknown_params(request)
        serializer = ExportRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fmt = serializer.validated_data["format"]
        params = form_data(serializer.validated_data["query"])
        self.audit_params = {"format": fmt, **params}
        check = RequestLogQuerySerializer(
            data=params, context={"caller": caller_of(request.user), "export": fmt}
        )
        if not check.is_valid():
            raise exceptions.ValidationError(
                {f"query.{name}": messages for name, messages in check.errors.items()}
            )
        scope_for(request.user, check.validated_data["project_ids"])  # 403 now, not later
        # The window as resolved now: a job that waits in the queue exports what was asked.
        params["start_time"] = format_time(check.validated_data["start_time"])
        params["end_time"] = format_time(check.validated_data["end_time"])
        owner = {"owner_client": request.user.api_client} if client_of(request.user) else {}
        job = ExportJob.objects.create(
            format=fmt, params=params, owner=None if owner else request.user, **owner
        )
        run_export.delay(str(job.pk))
        job.refresh_from_db()
        return Response({"success": True, "data": job_data(request, job)}, status=202)


class ExportDetailView(APIView):
    @extend_schema(
        summary="A background export: status, progress and download link",
        description="`progress` is rows_written / rows_total (null before the count is "
        "known). A finished export answers a fresh `download_url`, valid "
        "EXPORT_LINK_SECONDS; after EXPORT_RETENTION_HOURS the file is gone (status "
        "expired). Only the export's owner sees it (404 otherwise).",
        parameters=[_ID],
        responses={200: _JOB},
        tags=["requests"],
    )
    def get(self, request: Request, id: uuid.UUID) -> Response:
        reject_unknown_params(request)
        job = _owned_job(request, id)
        return Response({"success": True, "data": job_data(request, job)})


class LinkExpired(exceptions.APIException):
    status_code = 410
    default_code = "link_expired"
    default_detail = (
        "This download link has expired, or the export was deleted; read the export again "
        "for a new link."
    )


class ExportDownloadView(APIView):
    @extend_schema(
        summary="Download a finished background export",
        description="The file, with the signed `token` of a `download_url` (its owner only). "
        "410 once the link or the file has expired.",
        parameters=[
            _ID,
            OpenApiParameter("token", OpenApiTypes.STR, OpenApiParameter.QUERY, required=True),
        ],
        responses={
            (200, "text/csv"): OpenApiTypes.STR,
            (200, "application/x-ndjson"): OpenApiTypes.STR,
            410: OpenApiResponse(description="The link or the export has expired."),
        },
        tags=["requests"],
    )
    def get(self, request: Request, id: uuid.UUID) -> Any:
        reject_unknown_params(request, ["token"])
        job = _owned_job(request, id)
        token = request.query_params.get("token", "")
        if not token:
            raise exceptions.ValidationError({"token": ["token is required."]})
        if not token_valid(token, job) or job.status != ExportJob.DONE or not job.path.exists():
            raise LinkExpired()
        response = FileResponse(
            job.path.open("rb"),
            as_attachment=True,
            filename=f"requests-{job.pk}.{job.format}",
            content_type=CONTENT_TYPES[job.format],
        )
        response["Cache-Control"] = "no-store"
        return response
