"""Charts where the configuration lives: a blocking rule's matches over the last days and
a saved query's params form with a preview. The admin classes (``blocking.admin``,
``analytics.admin_saved_queries``) call these; the drawing is ``console/admin_charts.js``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from rest_framework import exceptions

from analytics.query import system
from analytics.saved_queries import SavedQuery, request_id_of, saved_query_run
from budmetrics_site.errors import _flatten, error_body, to_api_exception
from console.params import params_schema

CHART_JS = ("console/vendor/chartjs/chart.umd.min.js", "console/admin_charts.js")
RULE_DAYS = 7


def rule_daily_matches(rule_id: Any, now: datetime | None = None) -> list[tuple[str, int]]:
    """Requests the rule blocked on each of the last ``RULE_DAYS`` UTC days (today so far
    last), from the rule admin page's system query (staff only, all projects)."""
    end = (now or datetime.now(UTC)) + timedelta(seconds=1)
    today = end.replace(hour=0, minute=0, second=0, microsecond=0)
    days = [today - timedelta(days=n) for n in range(RULE_DAYS - 1, -1, -1)]
    return [
        (
            day.strftime("%m-%d"),
            system.rule_match_count(rule_id, day, min(day + timedelta(days=1), end)),
        )
        for day in days
    ]


def rule_matches_chart(rule_id: Any) -> SafeString:
    """A small bar chart of ``rule_daily_matches`` with the same numbers as a table."""
    days = rule_daily_matches(rule_id)
    rows = format_html_join("", "<tr><th scope='row'>{}</th><td>{}</td></tr>", days)
    return format_html(
        '<div class="console-mini" data-labels="{}" data-values="{}" data-label="Matches">'
        '<div style="position:relative;height:160px;max-width:520px"><canvas role="img" '
        'aria-label="Matches per day, last {} days; numbers in the table"></canvas></div>'
        "<details><summary>Numbers as a table</summary><table><caption>Matches per UTC "
        "day</caption><thead><tr><th scope='col'>Day</th><th scope='col'>Matches</th></tr>"
        "</thead><tbody>{}</tbody></table></details></div>",
        json.dumps([d for d, _ in days]),
        json.dumps([c for _, c in days]),
        RULE_DAYS,
        rows,
    )


def saved_query_editor(preview_url: str) -> SafeString:
    """The params form (built in the browser from each endpoint's serializer fields; it
    writes the JSON params field) and the Preview button with its chart area."""
    return format_html(
        '<div id="saved-query-editor" data-preview-url="{}" data-schema="{}">'
        '<div class="sq-fields"></div>'
        '<p><button type="button" class="button" id="sq-preview">Preview</button> '
        '<span class="sq-state" role="status"></span></p>'
        '<div class="sq-result"></div></div>',
        preview_url,
        json.dumps(params_schema()),
    )


def saved_query_preview(request: HttpRequest) -> HttpResponse:
    """POST ``{endpoint, time_window, params}`` → the endpoint's answer to that (unsaved)
    saved query for the staff user, through ``saved_query_run`` (their scope, audited)."""
    if request.method != "POST":
        return JsonResponse(error_body("method_not_allowed", "POST only."), status=405)
    try:
        body = orjson.loads(request.body)
        saved = SavedQuery(
            name="preview",
            endpoint=str(body.get("endpoint", "")),
            params=body.get("params") or {},
            time_window=str(body.get("time_window", "last_24h")),
        )
    except (orjson.JSONDecodeError, AttributeError):
        return JsonResponse(error_body("bad_request", "Send a JSON object."), status=400)
    try:
        saved.clean()
        outcome = saved_query_run(saved, request.user, request_id=request_id_of(request))
    except Exception as exc:  # noqa: BLE001 - mapped to the API's error answer, or re-raised
        return _error(exc)
    return HttpResponse(outcome.content, content_type="application/json")


def _error(exc: Exception) -> JsonResponse:
    if isinstance(exc, ValidationError):
        details = exc.message_dict
        message = "; ".join(f"{k}: {' '.join(v)}" for k, v in details.items())
        return JsonResponse(error_body("invalid_request", message, details), status=400)
    mapped = to_api_exception(exc)
    if not isinstance(mapped, exceptions.APIException):
        raise exc
    details = _flatten(mapped.detail) if isinstance(mapped.detail, dict | list) else {}
    message = (
        "; ".join(f"{k}: {' '.join(v)}" for k, v in details.items())
        if details
        else str(mapped.detail)
    )
    return JsonResponse(
        error_body(str(mapped.default_code), message, details), status=mapped.status_code
    )
