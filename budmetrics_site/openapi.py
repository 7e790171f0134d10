"""The OpenAPI contract, decided in one place instead of in every view.

``BudMetricsAutoSchema`` (``REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]``) adds to each operation
the error answers it can give, all with the one error envelope
``{"success": false, "error": {"code", "message", "details"}}``; tags each operation with
its area; types UUID path parameters and the comma-separated UUID-list query parameters.
``add_health_paths_and_tags`` (a drf-spectacular postprocessing hook) documents the probes,
which are plain Django views. Views keep their ``@extend_schema`` blocks for what only they know
(summary, description, request and success shapes).

Which errors an operation documents:

| status | when |
|---|---|
| 400 | every API operation (invalid input, unknown parameters, unreadable bodies) |
| 401 | every operation that needs credentials |
| 403 | unsafe methods (permissions, CSRF), data queries and project parameters (scope) |
| 404 | routes with path parameters, and paginated lists (a page past the end) |
| 413 | operations with a request body |
| 422, 503, 504 | operations that run ClickHouse queries (row/memory limit, outage, timeout) |
| 429 | throttled operations (with ``Retry-After``) |
"""

from __future__ import annotations

import re
from typing import Any

from django.db import models
from drf_spectacular.drainage import warn
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import get_view_model
from rest_framework import permissions, serializers

UUID_SCHEMA: dict[str, Any] = {"type": "string", "format": "uuid"}

# Query parameters read as lists of UUIDs: comma-separated (``a,b``) or repeated
# (``project_ids=a&project_ids=b``); the server joins repeated ones.
UUID_LIST_QUERY_PARAMETERS = ("project_ids", "model_ids", "endpoint_ids")
MAX_UUID_LIST_ITEMS = 1000

COUNTRY_CODE_PATTERN = r"^[A-Za-z]{2}$"

# Operations that answer from ClickHouse besides the data endpoints' own views (which are
# recognised by their ``audit_endpoint``): running a saved query and a dashboard view.
QUERY_RUNNER_PATHS = frozenset({"/gateway/saved-queries/{id}/run", "/gateway/dashboards/{view}"})

# Area tag by path prefix, first match wins; every operation gets exactly one.
AREA_TAGS: tuple[tuple[str, str], ...] = (
    ("/gateway/analytics", "analytics"),
    ("/gateway/geographical-stats", "geo"),
    ("/gateway/top-routes", "routes"),
    ("/gateway/client-analytics", "clients"),
    ("/gateway/blocking-", "blocking"),
    ("/gateway/saved-queries", "saved queries"),
    ("/gateway/dashboards", "dashboards"),
    ("/gateway/requests", "requests"),
    ("/gateway/exports", "requests"),
    ("/healthz", "health"),
    ("/readyz", "health"),
    ("/metrics", "health"),
)

TAGS: list[dict[str, str]] = [
    {"name": "analytics", "description": "Time series and summaries of any registry metric."},
    {"name": "geo", "description": "Where requests come from: countries, regions, cities."},
    {"name": "routes", "description": "The most requested and slowest routes."},
    {"name": "clients", "description": "Usage per client (API key)."},
    {"name": "blocking", "description": "Blocking rules and blocked-traffic statistics."},
    {"name": "saved queries", "description": "Named requests, run from cache when fresh."},
    {"name": "dashboards", "description": "The default dashboard views, kept warm."},
    {
        "name": "requests",
        "description": "The request log behind the numbers: pages, drill-down, exports.",
    },
    {"name": "health", "description": "Liveness, readiness and Prometheus metrics."},
]

ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Invalid input: error.message names each field and what is allowed, "
    "error.details lists the messages per field.",
    401: "No credentials, or an unknown or revoked API key.",
    403: "Not allowed: a project outside the caller's access list (named in the message), "
    "a caller with no project access at all (no_project_access), a change the caller may "
    "not make, or a session request without a CSRF token.",
    404: "No such object visible to the caller, or a page past the last one.",
    413: "The request body is larger than the server accepts.",
    422: "The query needed more memory or rows than allowed; narrow the range, coarsen "
    "the bucket or add filters.",
    429: "Too many requests; retry after the number of seconds in Retry-After.",
    503: "ClickHouse (or another service BudMetrics depends on) is unavailable; try again shortly.",
    504: "The query ran longer than QUERY_TIMEOUT; narrow it.",
}

_RETRY_AFTER = {
    "Retry-After": {
        "schema": {"type": "integer", "minimum": 0},
        "description": "Seconds to wait before the next request.",
    }
}
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

# The data endpoints' ``debug`` query parameter (``analytics.data_view``) and the ``meta``
# every data answer carries (``analytics.query.trace``).
DEBUG_PARAMETER: dict[str, Any] = {
    "name": "debug",
    "in": "query",
    "required": False,
    "schema": {"type": "boolean"},
    "description": "Staff users only (an API key, or a user without is_staff, asking for it "
    "gets 400): add `meta.debug`, each statement's SQL (placeholders), plan (EXPLAIN "
    "indexes = 1) and engine profile. The answer is computed afresh and not cached. "
    "Default: false (for staff, DEBUG_MODE).",
}
_STATEMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "sql": {"type": "string", "description": "With {name:Type} placeholders, no values."},
        "served_by": {"type": "string", "enum": ["primary", "backup"]},
        "storage": {"type": "string"},
        "refused": {"type": "object", "additionalProperties": {"type": "string"}},
        "plan": {"type": "array", "items": {"type": "string"}},
        "profile": {
            "type": "object",
            "description": "The engine's figures; null where it reported none (chDB "
            "reports its result size and elapsed time only).",
            "properties": {
                "engine": {"type": "string", "enum": ["chDB", "server"]},
                **{
                    name: {"type": "number", "nullable": True}
                    for name in (
                        "read_rows",
                        "read_bytes",
                        "result_rows",
                        "result_bytes",
                        "engine_elapsed_ms",
                        "memory_usage_bytes",
                        "client_elapsed_ms",
                    )
                },
            },
        },
    },
}
RESPONSE_META_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "served_by": {
            "type": "string",
            "enum": ["primary", "backup"],
            "description": "The ClickHouse that computed the answer; backup answers are "
            "never cached.",
        },
        "debug": {
            "type": "object",
            "properties": {"statements": {"type": "array", "items": _STATEMENT_SCHEMA}},
        },
    },
    "required": ["served_by"],
}
_RST_LITERAL = re.compile(r"``([^`]+)``")


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="Stable machine-readable code, e.g. invalid_request, not_found, "
        "permission_denied, throttled, query_timeout, service_unavailable."
    )
    message = serializers.CharField(help_text="What went wrong, in words a person can act on.")
    details = serializers.DictField(
        help_text="More detail: messages per field for invalid input; may be empty."
    )


class ErrorEnvelopeSerializer(serializers.Serializer):
    """The one error shape of the whole API."""

    success = serializers.BooleanField(help_text="Always false.")
    error = ErrorBodySerializer()


def area_tag(path: str) -> str | None:
    """The area an operation belongs to, by its path."""
    for prefix, tag in AREA_TAGS:
        if path.startswith(prefix):
            return tag
    return None


def clean_description(text: str) -> str:
    """Descriptions are CommonMark: RST literals (double backticks) become code spans."""
    return _RST_LITERAL.sub(r"`\1`", text)


class BudMetricsAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema plus the project's contract rules (module docstring)."""

    def get_tags(self) -> list[str]:
        tag = area_tag(self.path)
        if tag is None:
            warn(
                f"no area tag for {self.path}: add its prefix to budmetrics_site.openapi.AREA_TAGS"
            )
            return super().get_tags()
        return [tag]

    def get_description(self) -> str:  # type: ignore[override]
        return clean_description(super().get_description() or "")

    def runs_queries(self) -> bool:
        """Whether this operation answers from ClickHouse (so may time out or find it down)."""
        return bool(getattr(self.view, "audit_endpoint", None)) or self.path in QUERY_RUNNER_PATHS

    def _is_paginated_list(self) -> bool:
        return (
            self.method == "GET"
            and getattr(self.view, "action", None) == "list"
            and self._get_paginator() is not None
        )

    def error_status_codes(self) -> list[int]:
        """The error statuses this operation can answer with (table in the module docstring)."""
        perms = [p.__class__ for p in self.view.get_permissions()]
        needs_credentials = permissions.AllowAny not in perms
        parameter_names = {p["name"] for p in self._get_parameters()}
        codes = {400}
        if needs_credentials:
            codes.add(401)
        if needs_credentials and (
            self.method not in permissions.SAFE_METHODS
            or self.runs_queries()
            or parameter_names & {"project_id", "project_ids"}
        ):
            codes.add(403)
        if "{" in self.path or self._is_paginated_list():
            codes.add(404)
        if self.method in _BODY_METHODS and self._get_request_body():
            codes.add(413)
        if self.runs_queries():
            codes.update({422, 503, 504})
        if self.view.get_throttles():
            codes.add(429)
        return sorted(codes)

    def is_data_endpoint(self) -> bool:
        """A view of the endpoint registry (``analytics.data_view.EndpointView``)."""
        return bool(getattr(self.view, "audit_endpoint", None))

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        content = responses.get("200", {}).get("content", {}).get("application/json")
        if self.is_data_endpoint() and content and "schema" in content:
            content["schema"] = {
                "allOf": [
                    content["schema"],
                    {
                        "type": "object",
                        "properties": {"meta": RESPONSE_META_SCHEMA},
                        "required": ["meta"],
                    },
                ]
            }
        codes = set(self.error_status_codes())
        # Error codes a view declares itself keep their description but get the envelope.
        codes.update(int(code) for code in responses if str(code)[0] in "45")
        for code in codes:
            declared = responses.get(str(code)) or {}
            response = self._get_response_for_code(ErrorEnvelopeSerializer, str(code))
            response["description"] = declared.get("description") or ERROR_DESCRIPTIONS.get(
                code, "Error."
            )
            if code == 429:
                response["headers"] = {**response.get("headers", {}), **_RETRY_AFTER}
            responses[str(code)] = response
        return dict(sorted(responses.items()))

    def _get_parameters(self) -> list[dict[str, Any]]:
        parameters = super()._get_parameters()
        if self.is_data_endpoint() and all(p["name"] != "debug" for p in parameters):
            parameters.append(dict(DEBUG_PARAMETER))
        for parameter in parameters:
            if parameter["in"] != "query":
                continue
            if parameter["name"] in UUID_LIST_QUERY_PARAMETERS:
                parameter["schema"] = {
                    "type": "array",
                    "items": dict(UUID_SCHEMA),
                    "maxItems": MAX_UUID_LIST_ITEMS,
                }
                parameter["style"] = "form"
                parameter["explode"] = False
                parameter.setdefault(
                    "description",
                    "Comma-separated UUIDs (the parameter may also be repeated).",
                )
            elif (
                parameter["name"] == "country_code" and parameter["schema"].get("type") == "string"
            ):
                parameter["schema"] = {
                    **parameter["schema"],
                    "pattern": COUNTRY_CODE_PATTERN,
                    "minLength": 2,
                    "maxLength": 2,
                }
        return parameters

    def _resolve_path_parameters(self, variables: list[str]) -> list[dict[str, Any]]:
        parameters = super()._resolve_path_parameters(variables)
        model = get_view_model(self.view, emit_warnings=False)
        if model is None:  # get_queryset() needs a request; the serializer names the model
            serializer_meta = getattr(getattr(self.view, "serializer_class", None), "Meta", None)
            model = getattr(serializer_meta, "model", None)
        lookup = getattr(self.view, "lookup_url_kwarg", None) or getattr(
            self.view, "lookup_field", None
        )
        if model is None or not isinstance(model._meta.pk, models.UUIDField):
            return parameters
        for parameter in parameters:
            if parameter["name"] in (lookup, "pk", "id"):
                parameter["schema"] = dict(UUID_SCHEMA)
        return parameters


# --- The probes (plain Django views, not DRF) ------------------------------------------------

_ENVELOPE_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}

_CHECK_SCHEMA = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["ok", "degraded", "error"]},
        "detail": {"type": "string"},
        "elapsed_ms": {"type": "number"},
    },
    "required": ["status", "detail", "elapsed_ms"],
}

# The blocking-rule publication outbox, as /readyz reports it (budmetrics_site/health.py).
_PUBLICATION_SCHEMA = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["ok", "degraded", "not_configured", "unknown"]},
        "configured": {"type": "boolean"},
        "pending": {"type": "integer", "description": "Queued changes Redis has not acknowledged."},
        "oldest_pending_seconds": {"type": "number", "nullable": True},
    },
    "required": ["status"],
}

HEALTH_PATHS: dict[str, dict[str, Any]] = {
    "/healthz": {
        "get": {
            "operationId": "healthz",
            "summary": "Liveness",
            "description": "200 while the process serves requests; checks nothing else.",
            "tags": ["health"],
            "security": [],
            "responses": {
                "200": {
                    "description": "The process is alive.",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"status": {"type": "string", "enum": ["ok"]}},
                                "required": ["status"],
                            }
                        }
                    },
                }
            },
        }
    },
    "/readyz": {
        "get": {
            "operationId": "readyz",
            "summary": "Readiness of Postgres, ClickHouse and Redis",
            "description": "Checks each dependency once. 503 names the failed ones in the "
            "message; error.details holds every check as on success. When the primary "
            "ClickHouse cannot be reached but the backup answers, the answer is 200 with "
            "status `degraded` (and the clickhouse check `degraded`, saying why).",
            "tags": ["health"],
            "security": [],
            "responses": {
                "200": {
                    "description": "Every dependency answered (perhaps through a fallback).",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "success": {"type": "boolean"},
                                    "data": {
                                        "type": "object",
                                        "properties": {
                                            "status": {
                                                "type": "string",
                                                "enum": ["ready", "degraded"],
                                                "description": "degraded: only the "
                                                "backup ClickHouse answers, or blocking-rule "
                                                "changes have waited longer than "
                                                "BLOCKING_PUBLICATION_MAX_LAG seconds to "
                                                "reach the gateway's Redis.",
                                            },
                                            "checks": {
                                                "type": "object",
                                                "additionalProperties": _CHECK_SCHEMA,
                                            },
                                            "blocking_rules_publication": (_PUBLICATION_SCHEMA),
                                        },
                                        "required": ["status", "checks"],
                                    },
                                },
                                "required": ["success", "data"],
                            }
                        }
                    },
                },
                "503": {
                    "description": "A dependency is unavailable (code not_ready).",
                    "content": {"application/json": {"schema": _ENVELOPE_REF}},
                },
            },
        }
    },
    "/metrics": {
        "get": {
            "operationId": "metrics",
            "summary": "Prometheus metrics",
            "description": "Query duration histogram, query errors by kind, cache hits, "
            "misses and errors, queries answered by the backup ClickHouse and its circuit "
            "breaker's state, in the Prometheus text exposition format.",
            "tags": ["health"],
            "security": [],
            "responses": {
                "200": {
                    "description": "Prometheus text format.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    },
}


def add_health_paths_and_tags(
    result: dict[str, Any], generator: Any, **kwargs: Any
) -> dict[str, Any]:
    """Postprocessing hook: document the probes (plain Django views, invisible to DRF) and
    list the area tags, in this order, with their descriptions."""
    result.setdefault("paths", {}).update(HEALTH_PATHS)
    result["tags"] = [dict(tag) for tag in TAGS]
    return result


def add_registry_enums(result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    """Postprocessing hook: the registry's dimension names as the named component
    ``AnalyticsDimensionEnum``, which ``group_by`` items reference next to the ``tag:<key>``
    form (a field schema given by hand gets no enum component from drf-spectacular)."""
    from analytics.query.registry import DIMENSION_CHOICES

    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["AnalyticsDimensionEnum"] = {
        "type": "string",
        "enum": list(DIMENSION_CHOICES),
        "description": "A dimension of the analytics registry (GET /gateway/analytics/schema).",
    }
    return result
