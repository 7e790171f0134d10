"""Strict inputs on every endpoint (issue 10, item 5): unknown parameters and fields are a
400 naming them, listing what is allowed and suggesting the near miss; JSON deeper than
MAX_JSON_DEPTH is a 400 and a body over MAX_REQUEST_BODY_BYTES a 413; messages speak
JSON; numbers and booleans follow one rule everywhere; default GET windows end on a whole
minute; and no input produces a 500."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from django.utils import timezone

from analytics.dashboard_views import DashboardViewQuerySerializer
from analytics.fields import TimezoneField, parse_boolean, parse_whole_number
from analytics.routes_clients.serializers import (
    ClientAnalyticsQuerySerializer,
    TopRoutesQuerySerializer,
)
from analytics.serializers import AnalyticsRequestSerializer
from blocking.models import BlockingRule
from blocking.serializers import BlockingStatsQuerySerializer
from budmetrics_site.parsers import MAX_JSON_DEPTH, json_depth
from geo.serializers import GeoStatsQuerySerializer
from tests.conftest import make_row

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

P1 = "11111111-1111-1111-1111-111111111111"
P2 = "22222222-2222-2222-2222-222222222222"
WINDOW = {"start_time": "2024-01-01T00:00:00Z", "end_time": "2024-01-02T00:00:00Z"}
ANALYTICS = {**WINDOW, "time_bucket": "1d", "metrics": ["total_requests"]}
GET_DATA_ENDPOINTS = (
    "/gateway/geographical-stats",
    "/gateway/top-routes",
    "/gateway/client-analytics",
    "/gateway/blocking-stats",
)
PYTHON_WORDS = re.compile(r"\b(None|True|False|NoneType|dict|str|int)\b")


def error_of(response: Any, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.content[:500]
    payload = response.json()
    assert payload["success"] is False
    assert payload["error"]["message"]
    return payload["error"]


def speaks_json(error: dict[str, Any]) -> None:
    """No Python spellings (None, True, 'x') in the message or details."""
    text = error["message"] + json.dumps(error["details"], ensure_ascii=False)
    assert not PYTHON_WORDS.search(text), text


@pytest.fixture
def rows(clickhouse: Any) -> None:
    t = datetime(2024, 1, 1, 6, tzinfo=UTC)
    clickhouse(
        [make_row(timestamp=t, project_id=uuid.UUID(P1), status_code=500)] * 2
        + [make_row(timestamp=t, project_id=uuid.UUID(P1), is_blocked=True)]
        + [make_row(timestamp=t, project_id=uuid.UUID(P2))]
    )


@pytest.fixture
def rule(db: None) -> BlockingRule:
    return BlockingRule.objects.create(
        name=f"r-{uuid.uuid4().hex[:6]}",
        rule_type="ip_blocking",
        rule_config={"ip_addresses": ["203.0.113.7"]},
        project_id=uuid.UUID(P1),
    )


@pytest.fixture
def saved_id(superuser_client: Any) -> str:
    body = {"name": "s", "endpoint": "analytics", "time_window": "absolute", "params": ANALYTICS}
    response = superuser_client.post("/gateway/saved-queries", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["data"]["id"]


# --- 1. unknown query parameters ----------------------------------------------------------


@pytest.mark.parametrize("url", GET_DATA_ENDPOINTS)
@pytest.mark.parametrize(
    ("param", "suggestion"),
    [("project_id", "project_ids"), ("project_ids[]", "project_ids"), ("limt", "limit")],
)
def test_unknown_parameter_on_a_data_endpoint_is_a_400_with_a_suggestion(
    superuser_client, url, param, suggestion
):
    error = error_of(superuser_client.get(url, {param: P1}))
    assert error["code"] == "invalid_request"
    assert param in error["details"]
    message = " ".join(error["details"][param])
    assert f"did you mean {suggestion}?" in message
    assert "allowed: start_time, end_time, project_ids" in message
    assert param in error["message"]


def test_project_id_typo_no_longer_widens_an_all_projects_key_to_every_tenant(
    api_client_factory, rows
):
    every_project = api_client_factory(all_projects=True)
    error = error_of(every_project.get("/gateway/geographical-stats", {"project_id": P1}))
    assert "did you mean project_ids?" in error["message"]
    # The intended spelling answers for that project only.
    answer = every_project.get("/gateway/geographical-stats", {"project_ids": P1, **WINDOW})
    assert answer.status_code == 200
    assert answer.json()["data"]["summary"]["total_requests"] == 3


@pytest.mark.parametrize("url", GET_DATA_ENDPOINTS)
def test_drf_format_parameter_is_allowed(superuser_client, url):
    response = superuser_client.get(url, {"format": "json", **WINDOW})
    assert response.status_code == 200, response.content[:300]


def test_dashboard_view_rejects_unknown_parameters(superuser_client):
    error = error_of(
        superuser_client.get("/gateway/dashboards/overview", {"project_id": P1, "project_ids": P1})
    )
    assert "did you mean project_id?" in " ".join(error["details"]["project_ids"])
    assert "allowed: project_id" in error["message"]


def test_blocking_rules_list_rejects_unknown_parameters(superuser_client, rule):
    error = error_of(superuser_client.get("/gateway/blocking-rules", {"projectid": P1}))
    assert "did you mean project_id?" in error["message"]
    assert (
        "allowed: rule_type, status, project_id, scope, search, page, page_size"
        in (error["message"])
    )
    ok = superuser_client.get("/gateway/blocking-rules", {"page": 1, "page_size": 10})
    assert ok.status_code == 200


def test_blocking_rule_read_rejects_unknown_parameters(superuser_client, rule):
    error = error_of(superuser_client.get(f"/gateway/blocking-rules/{rule.id}", {"x": "1"}))
    assert "allowed: format" in error["message"]


def test_saved_queries_list_takes_only_its_page_parameters(superuser_client, saved_id):
    error = error_of(superuser_client.get("/gateway/saved-queries", {"page_sise": 5}))
    assert "did you mean page_size?" in error["message"]
    assert "allowed: page, page_size, format" in error["message"]
    ok = superuser_client.get("/gateway/saved-queries", {"page": 1, "page_size": 5})
    assert ok.status_code == 200
    assert ok.json()["data"]["count"] == 1


@pytest.mark.parametrize("url", ["/gateway/dashboards", "/gateway/analytics/schema"])
def test_listing_endpoints_without_a_query_serializer_reject_unknown_parameters(
    superuser_client, url
):
    error = error_of(superuser_client.get(url, {"project_ids": P1}))
    assert "project_ids" in error["details"]
    assert "allowed: format" in error["message"]
    assert superuser_client.get(url, {"format": "json"}).status_code == 200


def test_a_saved_query_run_takes_no_body(superuser_client, saved_id):
    url = f"/gateway/saved-queries/{saved_id}/run"
    error = error_of(superuser_client.post(url, {"start_time": "2024-01-01"}, format="json"))
    assert "start_time" in error["details"]
    listed = error_of(superuser_client.post(url, [1], format="json"))
    assert "no request body" in listed["message"]
    assert superuser_client.post(url).status_code == 200


def test_a_post_endpoint_takes_no_query_parameters(superuser_client, rows):
    """The analytics scope belongs in the body: a URL typo must not widen it silently."""
    error = error_of(
        superuser_client.post(f"/gateway/analytics?project_id={P1}", ANALYTICS, format="json")
    )
    assert "project_id" in error["details"]


def test_detail_and_action_routes_check_their_query_parameters(superuser_client, saved_id):
    error_of(superuser_client.get(f"/gateway/saved-queries/{saved_id}", {"bogus": "1"}))
    error_of(superuser_client.post(f"/gateway/saved-queries/{saved_id}/run?project_id={P1}"))
    assert superuser_client.get(f"/gateway/saved-queries/{saved_id}").status_code == 200


def test_creating_a_rule_with_a_query_parameter_stores_nothing(superuser_client):
    body = {"name": "r", "rule_type": "country_blocking", "rule_config": {"countries": ["RU"]}}
    error_of(superuser_client.post("/gateway/blocking-rules?bogus=1", body, format="json"))
    assert not BlockingRule.objects.exists()


def test_an_empty_filters_project_id_is_refused_not_read_as_every_project(superuser_client):
    body = {**ANALYTICS, "filters": {"project_id": []}}
    error = error_of(superuser_client.post("/gateway/analytics", body, format="json"))
    assert "filters.project_id" in error["details"]


@pytest.mark.parametrize("size", [" 5", "5.0", "+5"])
def test_page_sizes_follow_the_one_whole_number_rule(superuser_client, size):
    error = error_of(superuser_client.get("/gateway/saved-queries", {"page_size": size}))
    assert "page_size" in error["details"]


# --- 1. unknown body fields -----------------------------------------------------------------


def test_analytics_unknown_field_suggests_the_near_miss(superuser_client):
    response = superuser_client.post(
        "/gateway/analytics", {**ANALYTICS, "project_id": P1}, format="json"
    )
    error = error_of(response)
    assert "did you mean project_ids?" in " ".join(error["details"]["project_id"])
    assert "allowed: project_ids, model_ids" in error["message"]


def test_budapps_filters_project_id_is_still_the_project_scope(superuser_client, rows):
    body = {**ANALYTICS, "filters": {"project_id": P1}}
    response = superuser_client.post("/gateway/analytics", body, format="json")
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["query"]["project_scope"] == [P1]
    assert data["summary"]["total_requests"] == 3


def test_operator_form_unknown_key_suggests_value(superuser_client):
    body = {**ANALYTICS, "filters": {"path": {"op": "ne", "vlaue": "/x"}}}
    error = error_of(superuser_client.post("/gateway/analytics", body, format="json"))
    assert "did you mean value?" in " ".join(error["details"]["filters.path.vlaue"])


def test_unknown_filter_key_suggests_the_dimension(superuser_client):
    body = {**ANALYTICS, "filters": {"status_cod": 500}}
    error = error_of(superuser_client.post("/gateway/analytics", body, format="json"))
    assert "did you mean status_code?" in error["message"]
    assert "and, or, not" in error["message"]


@pytest.mark.parametrize("method", ["post", "put", "patch"])
def test_blocking_rule_bodies_reject_unknown_fields(superuser_client, rule, method):
    body = {
        "name": "n",
        "rule_type": "ip_blocking",
        "rule_config": {"ip_addresses": ["10.0.0.1"]},
        "priorty": 5,
    }
    url = "/gateway/blocking-rules" + ("" if method == "post" else f"/{rule.id}")
    error = error_of(getattr(superuser_client, method)(url, body, format="json"))
    assert "did you mean priority?" in " ".join(error["details"]["priorty"])
    assert "allowed: name, description, rule_type, rule_config" in error["message"]
    assert "created_at" not in error["message"]  # read-only: not offered


def test_read_only_fields_sent_back_are_ignored(superuser_client, rule):
    read = superuser_client.get(f"/gateway/blocking-rules/{rule.id}").json()["data"]
    response = superuser_client.put(
        f"/gateway/blocking-rules/{rule.id}", {**read, "priority": 7}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["data"]["priority"] == 7


@pytest.mark.parametrize("method", ["post", "put", "patch"])
def test_saved_query_bodies_reject_unknown_fields(superuser_client, saved_id, method):
    body = {"name": "t", "endpoint": "analytics", "params": ANALYTICS, "time_windw": "absolute"}
    url = "/gateway/saved-queries" + ("" if method == "post" else f"/{saved_id}")
    error = error_of(getattr(superuser_client, method)(url, body, format="json"))
    assert "did you mean time_window?" in " ".join(error["details"]["time_windw"])


def test_saved_query_params_are_strict_too(superuser_client):
    body = {
        "name": "geo",
        "endpoint": "geographical-stats",
        "time_window": "last_24h",
        "params": {"project_id": P1},
    }
    error = error_of(superuser_client.post("/gateway/saved-queries", body, format="json"))
    assert "did you mean project_ids?" in error["message"]


# --- 2. depth and size ------------------------------------------------------------------------


def _nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def _body_endpoints(rule: BlockingRule, saved_id: str) -> list[tuple[str, str]]:
    """Every operation that reads a body (a saved-query run takes none and reads none)."""
    return [
        ("post", "/gateway/analytics"),
        ("post", "/gateway/blocking-rules"),
        ("put", f"/gateway/blocking-rules/{rule.id}"),
        ("patch", f"/gateway/blocking-rules/{rule.id}"),
        ("post", "/gateway/saved-queries"),
        ("put", f"/gateway/saved-queries/{saved_id}"),
        ("patch", f"/gateway/saved-queries/{saved_id}"),
    ]


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 1000, 100_000])
def test_json_nested_too_deep_is_a_400_on_every_body_endpoint(
    superuser_client, rule, saved_id, levels
):
    body = '{"filters": ' + _nested(levels - 1) + "}"
    for method, url in _body_endpoints(rule, saved_id):
        response = getattr(superuser_client, method)(url, body, content_type="application/json")
        error = error_of(response)
        assert error["code"] == "parse_error", (url, error)
        assert f"deeper than {MAX_JSON_DEPTH} levels" in error["message"]


def test_json_at_the_depth_limit_reaches_validation(superuser_client):
    body = '{"filters": ' + _nested(MAX_JSON_DEPTH - 1) + "}"
    error = error_of(
        superuser_client.post("/gateway/analytics", body, content_type="application/json")
    )
    assert error["code"] == "invalid_request"  # the serializer's answer, not the parser's


def test_json_depth_counts_levels_without_recursion():
    assert json_depth(1) == 0
    assert json_depth([]) == 1
    assert json_depth({"a": [{"b": []}]}) == 4
    deep: Any = []
    for _ in range(50_000):
        deep = [deep]
    assert json_depth(deep) > MAX_JSON_DEPTH


def test_a_20_mb_body_is_a_413_with_the_envelope(superuser_client):
    body = json.dumps({**ANALYTICS, "filters": {"path": ["x" * 1000] * 20_000}})
    assert len(body) > 20_000_000
    response = superuser_client.post("/gateway/analytics", body, content_type="application/json")
    error = error_of(response, 413)
    assert error["code"] == "payload_too_large"
    assert "2621440 bytes (MAX_REQUEST_BODY_BYTES)" in error["message"]


def test_body_size_limit_follows_the_setting_on_every_body_endpoint(
    superuser_client, rule, saved_id, settings
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 5000
    body = json.dumps({"name": "x" * 6000})
    for method, url in _body_endpoints(rule, saved_id):
        response = getattr(superuser_client, method)(url, body, content_type="application/json")
        error = error_of(response, 413)
        assert "5000 bytes (MAX_REQUEST_BODY_BYTES)" in error["message"], url
    small = superuser_client.post("/gateway/analytics", ANALYTICS, format="json")
    assert small.status_code == 200


def test_too_many_query_parameters_is_a_400_envelope(superuser_client):
    query = "&".join(f"p{i}=1" for i in range(1100))
    error = error_of(superuser_client.get(f"/gateway/top-routes?{query}"))
    assert "Too many parameters" in error["message"]


# --- 3. messages speak JSON ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "field", "says"),
    [
        ({"path": None}, "filters.path", "null is not a string."),
        ({"status_code": True}, "filters.status_code", "true is not a whole number"),
        ({"is_bot": None}, "filters.is_bot", "null is not true or false"),
        ({"model_id": 5}, "filters.model_id", "5 is not a UUID."),
        ({"path": {"op": "ne"}}, "filters.path.value", "value is required"),
        ({"path": {"value": "x"}}, "filters.path.op", "op is required"),
        ({"path": {"op": None, "value": "x"}}, "filters.path", "Operator null does not apply"),
        ({"path": {"op": "contains", "value": False}}, "filters.path", "got false."),
        ({"status_class": {"op": "in", "value": None}}, "filters.status_class", "got null."),
        ({"or": None}, "filters.or", "non-empty list, got null."),
        ({"not": [1]}, "filters.not", "Must be an object, got list."),
    ],
)
def test_filter_messages_speak_json(superuser_client, filters, field, says):
    body = {**ANALYTICS, "filters": filters}
    error = error_of(superuser_client.post("/gateway/analytics", body, format="json"))
    assert says in " ".join(error["details"][field]), error
    speaks_json(error)


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("top_n", True, "got true."),
        ("fill_gaps", None, "may not be null"),
        ("fill_gaps", "yes", 'got "yes".'),
        ("metrics", "total_requests", "Must be a list, got string."),
        ("metrics", [True], "true is not a valid metric"),
        ("group_by", {"a": 1}, "Must be a list, got object."),
        ("time_bucket", 5, "5 is not a valid time_bucket; allowed: 1m"),
        ("timezone", 1, "Must be a string, got 1."),
        ("start_time", 1704067200, "got 1704067200."),
        ("project_ids", 5, "got number."),
        ("model_ids", [None], "null is not a UUID."),
    ],
)
def test_field_messages_speak_json(superuser_client, field, value, says):
    body = {**ANALYTICS, field: value}
    if field == "top_n":
        body["group_by"] = ["method"]
    error = error_of(superuser_client.post("/gateway/analytics", body, format="json"))
    assert says in json.dumps(error["details"], ensure_ascii=False).replace('\\"', '"'), error
    speaks_json(error)


def test_non_object_body_says_what_it_got(superuser_client):
    response = superuser_client.post("/gateway/analytics", "[1]", content_type="application/json")
    error = error_of(response)
    assert "Must be a JSON object, got list." in error["message"]


def test_rule_config_messages_speak_json(superuser_client):
    body = {
        "name": "rate",
        "rule_type": "rate_based_blocking",
        "rule_config": {"threshold": None, "window_seconds": True},
    }
    error = error_of(superuser_client.post("/gateway/blocking-rules", body, format="json"))
    assert "got null." in error["message"]
    assert "got true." in error["message"]
    speaks_json(error)


# --- 4. one rule for numbers and booleans ---------------------------------------------------------


def test_the_rule_itself():
    assert [parse_whole_number(v) for v in (5, "5", "-3", "007")] == [5, 5, -3, 7]
    for bad in (True, 5.0, 5.5, "5.0", " 5", "5 ", "1e3", "", "٣", None, [5], "9" * 21):
        assert parse_whole_number(bad) is None, bad
    assert [parse_boolean(v) for v in (True, False, "true", "FALSE", "True")] == [
        True,
        False,
        True,
        False,
        True,
    ]
    for bad in (1, 0, "1", "yes", "on", None, "", [True]):
        assert parse_boolean(bad) is None, bad


def _summary(client: Any, **body: Any) -> dict[str, Any]:
    response = client.post("/gateway/analytics", {**ANALYTICS, **body}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["data"]["summary"]


def test_numbers_and_booleans_as_strings_are_accepted_in_every_analytics_field(
    superuser_client, rows
):
    as_values = _summary(
        superuser_client,
        filters={"status_code": {"op": "gte", "value": 500}, "is_blocked": False},
        fill_gaps=False,
    )
    as_strings = _summary(
        superuser_client,
        filters={"status_code": {"op": "gte", "value": "500"}, "is_blocked": "false"},
        fill_gaps="false",
    )
    assert as_values == as_strings
    assert as_values["total_requests"] == 2
    in_list = _summary(superuser_client, filters={"status_code": ["500", 200]})
    assert in_list["total_requests"] == 4
    empty = _summary(superuser_client, filters={"client_id": {"op": "is_empty", "value": "true"}})
    assert empty["total_requests"] == 4
    top = superuser_client.post(
        "/gateway/analytics", {**ANALYTICS, "group_by": ["method"], "top_n": "1"}, format="json"
    )
    assert top.status_code == 200
    assert top.json()["data"]["query"]["top_n"] == 1


@pytest.mark.parametrize("value", [5.0, 5.5, "5.0", True, "x"])
def test_non_whole_numbers_are_refused_in_every_integer_field(
    superuser_client, rule, saved_id, value
):
    shown = json.dumps(value)
    cases = [
        ("post", "/gateway/analytics", {**ANALYTICS, "group_by": ["method"], "top_n": value}),
        ("post", "/gateway/analytics", {**ANALYTICS, "filters": {"status_code": value}}),
        ("patch", f"/gateway/blocking-rules/{rule.id}", {"priority": value}),
        ("patch", f"/gateway/saved-queries/{saved_id}", {"refresh_interval": value}),
        (
            "patch",
            f"/gateway/blocking-rules/{rule.id}",
            {
                "rule_type": "rate_based_blocking",
                "rule_config": {"threshold": value, "window_seconds": 60},
            },
        ),
    ]
    for method, url, body in cases:
        response = getattr(superuser_client, method)(url, body, format="json")
        error = error_of(response)
        assert "whole number" in error["message"], (url, error)
        assert shown in error["message"], (url, error)


def test_whole_numbers_as_strings_are_accepted_in_every_integer_field(
    superuser_client, rule, saved_id
):
    priority = superuser_client.patch(
        f"/gateway/blocking-rules/{rule.id}", {"priority": "7"}, format="json"
    )
    assert priority.json()["data"]["priority"] == 7
    rate = superuser_client.patch(
        f"/gateway/blocking-rules/{rule.id}",
        {
            "rule_type": "rate_based_blocking",
            "rule_config": {"threshold": "100", "window_seconds": 60},
        },
        format="json",
    )
    assert rate.json()["data"]["rule_config"] == {"threshold": 100, "window_seconds": 60}
    refresh = superuser_client.patch(
        f"/gateway/saved-queries/{saved_id}", {"refresh_interval": "120"}, format="json"
    )
    assert refresh.json()["data"]["refresh_interval"] == 120
    for url in GET_DATA_ENDPOINTS:
        assert superuser_client.get(url, {"limit": "5", **WINDOW}).status_code == 200


@pytest.mark.parametrize("value", [1, "1", "yes", None])
def test_booleans_take_only_true_and_false_everywhere(superuser_client, saved_id, value):
    for method, url, body in [
        ("post", "/gateway/analytics", {**ANALYTICS, "fill_gaps": value}),
        ("post", "/gateway/analytics", {**ANALYTICS, "filters": {"is_bot": value}}),
        ("patch", f"/gateway/saved-queries/{saved_id}", {"is_shared": value}),
    ]:
        error = error_of(getattr(superuser_client, method)(url, body, format="json"))
        assert "true or false" in error["message"] or "may not be null" in error["message"]
        speaks_json(error)
    query = "" if value is None else str(value)
    error = error_of(superuser_client.get("/gateway/top-routes", {"group_ids": query}))
    assert "true or false" in error["message"]


def test_booleans_as_strings_in_query_strings(superuser_client):
    for spelling in ("false", "False", "FALSE"):
        response = superuser_client.get("/gateway/top-routes", {"group_ids": spelling, **WINDOW})
        assert response.status_code == 200


# --- 5. default windows share a cache entry ---------------------------------------------------


@pytest.mark.parametrize("url", GET_DATA_ENDPOINTS)
def test_default_window_ends_on_a_whole_minute_so_repeats_hit_the_cache(superuser_client, url):
    for _attempt in range(3):
        minute = timezone.now().replace(second=0, microsecond=0)
        first = superuser_client.get(url)
        second = superuser_client.get(url)
        if timezone.now().replace(second=0, microsecond=0) == minute:
            break  # both in one minute (else the window moved on: try again)
    assert first.status_code == 200, first.content[:300]
    assert first["X-Cache"] == "MISS"
    assert second["X-Cache"] == "HIT"
    assert second.content == first.content


def test_default_end_is_now_rounded_up_to_the_minute():
    serializer = BlockingStatsQuerySerializer(data={})
    before = timezone.now()
    assert serializer.is_valid(), serializer.errors
    end = serializer.validated_data["end_time"]
    assert (end.second, end.microsecond) == (0, 0)
    assert 0 <= (end - before).total_seconds() < 60


# --- 7. blocking-stats timezone ----------------------------------------------------------------


def test_blocking_stats_timezone_is_the_analytics_field():
    analytics = AnalyticsRequestSerializer().fields["timezone"]
    blocking = BlockingStatsQuerySerializer().fields["timezone"]
    assert type(analytics) is type(blocking)
    assert isinstance(blocking, TimezoneField)
    assert blocking.default == analytics.default == "UTC"


def test_blocking_stats_takes_a_timezone(superuser_client, rows):
    ok = superuser_client.get(
        "/gateway/blocking-stats", {"timezone": "Europe/Berlin", "time_bucket": "1h", **WINDOW}
    )
    assert ok.status_code == 200, ok.content[:300]
    assert BlockingStatsQuerySerializer(data={"timezone": "Europe/Berlin"}).is_valid()
    validated = BlockingStatsQuerySerializer(data={})
    assert validated.is_valid()
    assert validated.validated_data["timezone"] == "UTC"


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "utc ", "x" * 100, "Europe/Berlin\x00"])
def test_blocking_stats_refuses_what_analytics_refuses(superuser_client, zone):
    stats = error_of(superuser_client.get("/gateway/blocking-stats", {"timezone": zone}))
    analytics = error_of(
        superuser_client.post("/gateway/analytics", {**ANALYTICS, "timezone": zone}, format="json")
    )
    assert stats["details"]["timezone"] == analytics["details"]["timezone"]
    if zone == "Mars/Olympus":
        assert "IANA time zone" in stats["message"]


# --- 6. hostile input never produces a 500 -----------------------------------------------------

HOSTILE_STRINGS = [
    "",
    "\x00",
    "a\x00b",
    "x" * 100_000,
    "ü路径💥",
    "'; DROP TABLE gateway_analytics; --",
    "{p:String}",
    "-1",
    "99999999999999999999999999",
    "1e309",
    "NaN",
    "null",
    "[]",
    "%",
    ",,,",
]
HOSTILE_VALUES: list[Any] = [
    *HOSTILE_STRINGS,
    None,
    True,
    0,
    -1,
    2**64,
    10**300,
    1e308,
    -0.0,
    [],
    [None],
    [[1]],
    {},
    {"op": "eq"},
    {"a": {"b": {"c": []}}},
    ["x"] * 2000,
]
ANALYTICS_FIELDS = [
    "project_ids",
    "model_ids",
    "endpoint_ids",
    "start_time",
    "end_time",
    "time_bucket",
    "metrics",
    "group_by",
    "filters",
    "timezone",
    "fill_gaps",
    "top_n",
    "order_by",
    "include_other",
    "compare_previous",
]


def _ok(response: Any, context: Any) -> None:
    assert response.status_code in (200, 201, 400, 403, 404), (
        context,
        response.status_code,
        response.content[:300],
    )
    assert response["Content-Type"].startswith("application/json"), context
    assert response.json()["success"] is (response.status_code < 300), context


@pytest.mark.parametrize("field", ANALYTICS_FIELDS)
def test_hostile_values_in_every_analytics_field(superuser_client, rows, field):
    for value in HOSTILE_VALUES:
        body = {**ANALYTICS, "group_by": ["method"], field: value}
        response = superuser_client.post("/gateway/analytics", body, format="json")
        _ok(response, (field, repr(value)[:60]))
        if response.status_code == 400:
            speaks_json(response.json()["error"])


@pytest.mark.parametrize("dimension", ["path", "status_code", "is_bot", "model_id", "method"])
def test_hostile_filter_values(superuser_client, rows, dimension):
    for value in HOSTILE_VALUES:
        for spec in (value, {"op": "ne", "value": value}, {"op": "in", "value": [value]}):
            body = {**ANALYTICS, "filters": {dimension: spec}}
            response = superuser_client.post("/gateway/analytics", body, format="json")
            _ok(response, (dimension, repr(spec)[:60]))


@pytest.mark.parametrize("url", [*GET_DATA_ENDPOINTS, "/gateway/dashboards/overview"])
def test_hostile_query_strings_on_every_get_endpoint(superuser_client, url):
    serializer = {
        "/gateway/geographical-stats": GeoStatsQuerySerializer,
        "/gateway/top-routes": TopRoutesQuerySerializer,
        "/gateway/client-analytics": ClientAnalyticsQuerySerializer,
        "/gateway/blocking-stats": BlockingStatsQuerySerializer,
        "/gateway/dashboards/overview": DashboardViewQuerySerializer,
    }[url]
    for name in list(serializer().fields):
        for value in HOSTILE_STRINGS:
            response = superuser_client.get(url, {name: value})
            _ok(response, (url, name, value[:40]))
        repeated = superuser_client.get(f"{url}?{name}=a&{name}=b&{name}[]=c")
        _ok(repeated, (url, name, "repeated"))


def test_hostile_values_in_blocking_rule_and_saved_query_bodies(superuser_client, rule, saved_id):
    rule_fields = ["name", "description", "rule_type", "rule_config", "status", "reason"]
    rule_fields += ["priority", "project_id", "endpoint_id", "expires_at"]
    saved_fields = ["name", "endpoint", "params", "time_window", "refresh_interval", "is_shared"]
    for value in HOSTILE_VALUES:
        for field in rule_fields:
            for method, url in (
                ("post", "/gateway/blocking-rules"),
                ("patch", f"/gateway/blocking-rules/{rule.id}"),
            ):
                body = {
                    "name": "h",
                    "rule_type": "ip_blocking",
                    "rule_config": {"ip_addresses": ["10.0.0.1"]},
                    field: value,
                }
                response = getattr(superuser_client, method)(url, body, format="json")
                _ok(response, (url, field, repr(value)[:40]))
        for field in saved_fields:
            body = {"name": "h", "endpoint": "analytics", "params": ANALYTICS, field: value}
            for method, url in (
                ("post", "/gateway/saved-queries"),
                ("patch", f"/gateway/saved-queries/{saved_id}"),
            ):
                response = getattr(superuser_client, method)(url, body, format="json")
                _ok(response, (url, field, repr(value)[:40]))


@pytest.mark.parametrize(
    "body",
    [
        "",
        "null",
        "1",
        '"x"',
        "[]",
        "{",
        '{"a": NaN}',
        '{"top_n": Infinity}',
        '{"top_n": 1e999}',
        '{"top_n": ' + "9" * 5000 + "}",
        '{"a": "\\ud800"}',
        '{"filters": {"path": "\\udfff"}, "name": "\\ud800x"}',
        '{"\\ud800": 1}',
        '{"a": 1, "a": 2}',
        "\xff\xfe",
    ],
)
def test_malformed_bodies_are_400s(superuser_client, rule, saved_id, body):
    for method, url in _body_endpoints(rule, saved_id):
        response = getattr(superuser_client, method)(url, body, content_type="application/json")
        _ok(response, (url, body[:30]))


def test_the_api_reads_json_only(superuser_client, rule):
    """Form bodies would bypass the JSON depth limit (a form field holding deep JSON)."""
    form = superuser_client.post("/gateway/analytics", {"start_time": "x", "metrics": "y"})
    encoded = superuser_client.post(
        "/gateway/blocking-rules",
        "name=x&rule_config=" + "[" * 5000,
        content_type="application/x-www-form-urlencoded",
    )
    plain = superuser_client.post("/gateway/analytics", "hello", content_type="text/plain")
    for response in (form, encoded, plain):
        error = error_of(response, 415)
        assert error["code"] == "unsupported_media_type"
