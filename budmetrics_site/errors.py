"""One error envelope for the whole API:
``{"success": false, "error": {"code", "message", "details"}}``. The Django admin is the one
part of the site people read in a browser: its 400/403/404/500 pages are HTML
(``handler_*`` below pick by path)."""

from __future__ import annotations

from typing import Any

import structlog
from django.conf import settings
from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from budmetrics_site import exceptions as domain

logger = structlog.get_logger(__name__)


class ServiceUnavailableAPIError(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = domain.ServiceUnavailableError.default_message
    default_code = "service_unavailable"


class QueryTimeoutAPIError(exceptions.APIException):
    status_code = status.HTTP_504_GATEWAY_TIMEOUT
    default_detail = domain.QueryTimeoutError.default_message
    default_code = "query_timeout"


class QueryTooLargeAPIError(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = domain.QueryTooLargeError.default_message
    default_code = "query_too_large"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


def payload_too_large() -> PayloadTooLarge:
    """The 413 for a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (``MAX_REQUEST_BODY_BYTES``):
    Django raises RequestDataTooBig, a SuspiciousOperation that would otherwise be a
    bare 400 "could not be read"."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return PayloadTooLarge(
        f"The request body is larger than {limit} bytes (MAX_REQUEST_BODY_BYTES)."
    )


def _readable(exc: Exception) -> Exception:
    """Django's request-reading errors as API exceptions with the right status."""
    if isinstance(exc, RequestDataTooBig):
        return payload_too_large()
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        return exceptions.ValidationError(
            {
                "non_field_errors": [
                    f"Too many parameters; at most {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS}."
                ]
            }
        )
    if isinstance(exc, SuspiciousOperation):
        return exceptions.ParseError("The request could not be read.")
    return exc


def to_api_exception(exc: Exception) -> Exception:
    """The HTTP form of an error raised below the views: domain errors of the query layer
    (the one mapping of query-layer failures to statuses), Django's 404/403 and its
    request-reading errors; any other exception as is."""
    if isinstance(exc, domain.QueryTimeoutError):
        return QueryTimeoutAPIError(exc.message)
    if isinstance(exc, domain.DependencyError):
        return ServiceUnavailableAPIError(exc.message)
    if isinstance(exc, domain.QueryTooLargeError):
        return QueryTooLargeAPIError(exc.message)
    if isinstance(exc, domain.ResultTooLargeError):
        return exceptions.ValidationError({exc.field: [exc.message]})
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, PermissionDenied):
        return exceptions.PermissionDenied()
    return _readable(exc)


# The domain names, for code that raises or retries on them.
ServiceUnavailable = domain.ServiceUnavailableError
QueryTimeout = domain.QueryTimeoutError
QueryTooLarge = domain.QueryTooLargeError


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as {"field.sub": [messages]} for the details object."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors":
                name = prefix or "non_field_errors"
            out.update(_flatten(value, name))
    elif isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            out.setdefault(prefix or "non_field_errors", []).extend(str(i) for i in detail)
        else:
            for index, item in enumerate(detail):
                out.update(_flatten(item, f"{prefix}[{index}]"))
    else:
        out.setdefault(prefix or "non_field_errors", []).append(str(detail))
    return out


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"success": False, "error": {"code": code, "message": message, "details": details or {}}}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    exc = to_api_exception(exc)
    response = exception_handler(exc, context)
    if response is None:
        return None  # unexpected: Django's 500 handler (JSON, below) takes over
    if isinstance(exc, exceptions.ValidationError):
        details = _flatten(exc.detail)
        parts = [f"{field}: {' '.join(messages)}" for field, messages in details.items()]
        message = "Invalid request. " + "; ".join(parts)
        code = "invalid_request"
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        if isinstance(detail, dict | list):
            details = _flatten(detail)
            message = "; ".join(" ".join(v) for v in details.values())
        else:
            details = {}
            message = str(detail)
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        code = codes if isinstance(codes, str) else getattr(exc, "default_code", "error")
        extra = getattr(exc, "details", None)
        if isinstance(extra, dict):
            details = {**details, **extra}
    response.data = error_body(code, message, details)
    if response.status_code >= 500:
        logger.warning("api_error", code=code, status=response.status_code, message=message)
    return response


def json_handler_404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("not_found", f"No endpoint at {request.path}."), status=404)


def json_handler_500(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        error_body("internal_error", "An unexpected error occurred; it has been logged."),
        status=500,
    )


def json_handler_400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    if isinstance(exception, RequestDataTooBig):
        too_big = payload_too_large()
        return JsonResponse(
            error_body(too_big.default_code, str(too_big.detail)), status=too_big.status_code
        )
    return JsonResponse(error_body("bad_request", "The request could not be read."), status=400)


def json_handler_403(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("permission_denied", "Permission denied."), status=403)


# --- Handlers by path: HTML for the admin, the JSON envelope for everything else ------------

_ADMIN_500 = (
    "<!doctype html><html lang=en><head><title>Server error | BudMetrics admin</title></head>"
    "<body><h1>Server error (500)</h1><p>Something went wrong on our side; it has been "
    'logged. <a href="{index}">Back to the admin</a>.</p></body></html>'
)


def _is_admin(request: HttpRequest) -> bool:
    return request.path.startswith(reverse("admin:index"))


def _admin_page(request: HttpRequest, status: int, title: str, message: str) -> HttpResponse:
    """An admin-styled error page (header, user tools, breadcrumbs to the index)."""
    from django.contrib import admin

    context = {**admin.site.each_context(request), "title": title, "message": message}
    return render(request, "admin/error_page.html", context, status=status)


def handler_400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if not _is_admin(request):
        return json_handler_400(request, exception)
    return _admin_page(request, 400, "Bad request", "The request could not be read.")


def handler_403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if not _is_admin(request):
        return json_handler_403(request, exception)
    return _admin_page(
        request,
        403,
        "Permission denied",
        "Your account may not open this page. Staff who manage blocking rules, API clients, "
        "project access and saved queries need the “BudMetrics staff” group (or the "
        "matching permissions), given by a superuser under Authentication and "
        "Authorization → Users.",
    )


def handler_404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if not _is_admin(request):
        return json_handler_404(request, exception)
    return _admin_page(request, 404, "Page not found", f"There is no admin page at {request.path}.")


def handler_500(request: HttpRequest) -> HttpResponse:
    if not _is_admin(request):
        return json_handler_500(request)
    # No template: whatever failed may be what a template needs.
    return HttpResponse(_ADMIN_500.format(index=reverse("admin:index")), status=500)
