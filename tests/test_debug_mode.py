"""Debug output and query-log redaction (issue 12, item 3), on real chDB, Postgres, Redis.

``?debug=true`` from a staff user adds ``meta.debug``: per statement the SQL with
placeholders, the plan (``EXPLAIN indexes = 1``) and the engine's profile; the answer
bypasses the response cache both ways. An API key or a non-staff user asking is a 400
naming ``debug``. ``LOG_QUERIES`` redacts parameter values unless ``LOG_QUERY_VALUES``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from tests import analytics_oracle as oracle
from tests.conftest import make_row

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

P1 = oracle.PROJECTS[0]
T0 = datetime(2024, 1, 1, 3, tzinfo=UTC)
ROUTES = (
    "/gateway/top-routes?start_time=2024-01-01T00:00:00Z&end_time=2024-01-02T00:00:00Z"
    f"&project_ids={P1}"
)
ANALYTICS = {
    "project_ids": [str(P1)],
    "start_time": "2024-01-01T00:00:00Z",
    "end_time": "2024-01-02T00:00:00Z",
    "time_bucket": "6h",
    "metrics": ["total_requests", "p95_response_time"],
    "filters": {"client_id": "secret-client"},
}


@pytest.fixture
def rows(clickhouse: Any) -> None:
    clickhouse([make_row(timestamp=T0, project_id=P1, client_id="secret-client") for _ in range(4)])


@pytest.fixture
def staff(user_client_factory: Any) -> Any:
    return user_client_factory([P1], is_staff=True)


def error_fields(response: Any) -> dict[str, Any]:
    assert response.status_code == 400, response.content
    return response.json()["error"]["details"]


def test_staff_debug_shows_sql_plan_and_profile_and_bypasses_the_cache(
    staff: Any, rows: None
) -> None:
    response = staff.get(ROUTES + "&debug=true")
    assert response.status_code == 200, response.content
    assert response["X-Cache"] == "BYPASS"
    meta = response.json()["meta"]
    assert meta["served_by"] == "primary"
    statements = meta["debug"]["statements"]
    assert statements
    for statement in statements:
        assert "{scope_project_ids:Array(UUID)}" in statement["sql"]
        assert str(P1) not in statement["sql"]  # placeholders, never values
        assert statement["served_by"] == "primary"
        assert statement["storage"] == "routes_15m"  # a covered request (issue 11)
        plan = "\n".join(statement["plan"])
        assert "ReadFromMergeTree" in plan
        assert "Granules:" in plan  # EXPLAIN indexes = 1: granules selected per index
        profile = statement["profile"]
        # chDB reports its result size and elapsed time, not rows scanned nor memory.
        assert profile["engine"] == "chDB"
        assert profile["result_rows"] == len(response.json()["data"]["routes"]) == 1
        assert profile["result_bytes"] > 0
        assert profile["engine_elapsed_ms"] > 0
        assert profile["read_rows"] is None
        assert profile["memory_usage_bytes"] is None

    # The debug answer neither used nor filled the cache: the next plain request misses.
    plain = staff.get(ROUTES)
    assert plain["X-Cache"] == "MISS"
    assert plain.json()["meta"] == {"served_by": "primary"}
    assert plain.json()["data"] == response.json()["data"]
    again = staff.get(ROUTES + "&debug=true")
    assert again["X-Cache"] == "BYPASS"
    assert "debug" in again.json()["meta"]


def test_staff_debug_on_post_analytics_takes_the_query_parameter(staff: Any, rows: None) -> None:
    response = staff.post("/gateway/analytics?debug=true", ANALYTICS, format="json")
    assert response.status_code == 200, response.content
    statements = response.json()["meta"]["debug"]["statements"]
    assert statements
    assert all("secret-client" not in s["sql"] for s in statements)
    assert [s["storage"] for s in statements] == ["raw", "none"]  # series, bucket list
    series_plan = "\n".join(statements[0]["plan"])
    assert "Granules:" in series_plan
    assert "Distinct" in "\n".join(statements[1]["plan"])
    assert response.json()["data"]["summary"]["total_requests"] == 4


def test_debug_is_refused_for_api_keys_and_non_staff_users(
    api_client_factory: Any, user_client_factory: Any, rows: None
) -> None:
    key = api_client_factory([P1])
    details = error_fields(key.get(ROUTES + "&debug=true"))
    assert "staff" in details["debug"][0]
    details = error_fields(key.post("/gateway/analytics?debug=true", ANALYTICS, format="json"))
    assert "debug" in details
    user = user_client_factory([P1])  # signed in, not staff
    assert "debug" in error_fields(user.get(ROUTES + "&debug=1"))
    # debug=false is allowed for anyone, and answers without debug output.
    plain = key.get(ROUTES + "&debug=false")
    assert plain.status_code == 200
    assert plain.json()["meta"] == {"served_by": "primary"}


def test_debug_takes_only_booleans(staff: Any) -> None:
    assert "debug" in error_fields(staff.get(ROUTES + "&debug=maybe"))


def test_debug_mode_makes_debug_the_default_for_staff_only(
    settings: Any, staff: Any, api_client_factory: Any, rows: None
) -> None:
    settings.DEBUG_MODE = True
    assert "debug" in staff.get(ROUTES).json()["meta"]
    assert "debug" not in staff.get(ROUTES + "&debug=false").json()["meta"]
    key_answer = api_client_factory([P1]).get(ROUTES)
    assert key_answer.status_code == 200
    assert "debug" not in key_answer.json()["meta"]


def test_openapi_documents_debug_and_meta(staff: Any) -> None:
    schema = staff.get("/api/schema/?format=json").json()
    for path, method in (
        ("/gateway/top-routes", "get"),
        ("/gateway/geographical-stats", "get"),
        ("/gateway/client-analytics", "get"),
        ("/gateway/blocking-stats", "get"),
        ("/gateway/analytics", "post"),
    ):
        operation = schema["paths"][path][method]
        names = [p["name"] for p in operation["parameters"]]
        assert "debug" in names, path
        success = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert any("meta" in part.get("properties", {}) for part in success["allOf"]), path
    assert not any(
        p["name"] == "debug"
        for p in schema["paths"]["/gateway/saved-queries"]["get"].get("parameters", [])
    )


def _query_logs(caplog: Any) -> list[dict[str, Any]]:
    return [
        r.msg
        for r in caplog.records
        if isinstance(r.msg, dict) and r.msg.get("event") == "clickhouse_query"
    ]


@pytest.mark.parametrize("with_values", [False, True])
def test_log_queries_redacts_values_unless_log_query_values(
    settings: Any, superuser_client: Any, rows: None, caplog: Any, with_values: bool
) -> None:
    settings.LOG_QUERIES = True
    settings.LOG_QUERY_VALUES = with_values
    with caplog.at_level(logging.INFO):
        response = superuser_client.post("/gateway/analytics", ANALYTICS, format="json")
    assert response.status_code == 200, response.content
    logs = _query_logs(caplog)
    assert logs
    logged = json.dumps([e["parameters"] for e in logs], default=str)
    assert ("secret-client" in logged) is with_values
    assert (str(P1) in logged) is with_values
    for entry in logs:
        assert entry["parameters"]  # the names are always there
        assert entry["served_by"] == "primary"
        if not with_values:
            assert set(entry["parameters"].values()) == {"<redacted>"}


def test_the_request_log_carries_meta_and_debug_output_for_staff_only(
    staff: Any, api_client_factory: Any, rows: None
) -> None:
    """The request log's page and single read: ``meta.served_by`` always, ``meta.debug``
    (SQL with placeholders, plan) for staff who ask, a 400 naming ``debug`` for a key."""
    page_url = (
        "/gateway/requests?start_time=2024-01-01T00:00:00Z&end_time=2024-01-02T00:00:00Z"
        f"&project_ids={P1}&fields=request_id,client_id"
    )
    key = api_client_factory([P1])
    plain = key.get(page_url)
    assert plain.status_code == 200, plain.content
    assert plain.json()["meta"] == {"served_by": "primary"}
    assert len(plain.json()["data"]["requests"]) == 4
    assert "debug" in error_fields(key.get(page_url + "&debug=true"))

    page = staff.get(page_url + "&debug=true")
    assert page.status_code == 200, page.content
    statements = page.json()["meta"]["debug"]["statements"]
    assert statements
    for statement in statements:
        assert "{scope_project_ids:Array(UUID)}" in statement["sql"]
        assert str(P1) not in statement["sql"]
        assert statement["storage"] == "raw"
        assert "ReadFromMergeTree" in "\n".join(statement["plan"])

    request_id = plain.json()["data"]["requests"][0]["request_id"]
    one = staff.get(f"/gateway/requests/{request_id}?debug=true")
    assert one.status_code == 200, one.content
    assert one.json()["data"]["client_id"] == "secret-client"
    assert one.json()["meta"]["served_by"] == "primary"
    assert one.json()["meta"]["debug"]["statements"]
    assert "debug" in error_fields(key.get(f"/gateway/requests/{request_id}?debug=true"))
