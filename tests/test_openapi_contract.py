"""The OpenAPI document is the contract: schemathesis fuzzes every operation of the
project's own ``/api/schema/`` in-process (WSGI, no server) on real chDB rows, as a real
API key, and fails on any 5xx, any status code the operation does not document, and any
answer that does not match its documented schema. Plus the contract's rules, checked on the
generated document: error envelope, tags, UUID and country-code types, one page shape."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.core.management import call_command
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from analytics.access.models import ApiClient
from analytics.saved_queries import SavedQuery
from blocking.models import BlockingRule
from budmetrics_site.openapi import AREA_TAGS, TAGS
from budmetrics_site.pagination import MAX_PAGE_SIZE
from tests.conftest import truncate_clickhouse

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

# Bounded and reproducible: a handful of generated cases per operation (plus schemathesis'
# explicit examples and boundary cases), the same ones on every run.
MAX_EXAMPLES = 12

CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]

# Objects that path parameters are pointed at about half of the time (map_path_parameters),
# so detail routes answer 200 with real bodies and not only 404.
RULE_ID = uuid.UUID("00000000-0000-4000-8000-0000000000b1")
SAVED_QUERY_ID = uuid.UUID("00000000-0000-4000-8000-0000000000c1")

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", WSGIHandler())


@schema.auth()
class _ApiKey:
    """Registered so that schemathesis sends no made-up credentials of its own; the real
    key exists only inside each test (its database transaction), which sends it."""

    def get(self, case: Any, ctx: Any) -> str:
        return ""

    def set(self, case: Any, data: str, ctx: Any) -> None:
        return None


@schema.hook
def map_path_parameters(ctx: Any, path_parameters: dict[str, Any] | None) -> Any:
    value = (path_parameters or {}).get("id")
    if isinstance(value, str) and value[:1] in "01234567":
        real = SAVED_QUERY_ID if "saved-queries" in ctx.operation.path else RULE_ID
        path_parameters = {**path_parameters, "id": str(real)}
    return path_parameters


@pytest.fixture(scope="module")
def traffic(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """A small realistic data set in chDB (the demo generator: countries, routes, clients,
    user agents, errors, blocked requests) over the last 7 days, the GET default window."""
    with django_db_blocker.unblock():
        truncate_clickhouse()
        call_command("generate_traffic", rows=3000, days=7, projects=2, seed=10, verbosity=0)
        yield
        truncate_clickhouse()


@pytest.fixture
def api_key(traffic: None) -> Iterator[str]:
    """A real all-projects API key that may manage blocking rules, one rule and one saved
    query to point path parameters at."""
    client, key = ApiClient.create_with_key(
        name=f"fuzzer-{uuid.uuid4().hex[:8]}", all_projects=True, can_manage_blocking_rules=True
    )
    BlockingRule.objects.create(
        id=RULE_ID,
        name="block scanners",
        rule_type="user_agent_blocking",
        rule_config={"patterns": ["sqlmap"], "match_type": "substring"},
        expires_at=datetime.now(UTC) + timedelta(days=30),
        created_by_client=client,
    )
    SavedQuery.objects.create(
        id=SAVED_QUERY_ID,
        name="top routes",
        owner_client=client,
        endpoint="top-routes",
        params={"limit": 5},
        time_window="last_24h",
    )
    # Django's test client does the same: the request signals would otherwise close the
    # test's database connection inside its transaction.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield key
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_keeps_its_contract(case: Any, api_key: str) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {api_key}"}, checks=CHECKS)


# --- The document's own rules --------------------------------------------------------------

EXPECTED_OPERATIONS = {
    ("POST", "/gateway/analytics"),
    ("GET", "/gateway/analytics/schema"),
    ("GET", "/gateway/geographical-stats"),
    ("GET", "/gateway/top-routes"),
    ("GET", "/gateway/client-analytics"),
    ("GET", "/gateway/blocking-stats"),
    ("GET", "/gateway/blocking-rules"),
    ("POST", "/gateway/blocking-rules"),
    ("GET", "/gateway/blocking-rules/{id}"),
    ("PUT", "/gateway/blocking-rules/{id}"),
    ("PATCH", "/gateway/blocking-rules/{id}"),
    ("DELETE", "/gateway/blocking-rules/{id}"),
    ("GET", "/gateway/saved-queries"),
    ("POST", "/gateway/saved-queries"),
    ("GET", "/gateway/saved-queries/{id}"),
    ("PUT", "/gateway/saved-queries/{id}"),
    ("PATCH", "/gateway/saved-queries/{id}"),
    ("DELETE", "/gateway/saved-queries/{id}"),
    ("POST", "/gateway/saved-queries/{id}/run"),
    ("GET", "/gateway/dashboards"),
    ("GET", "/gateway/dashboards/{view}"),
    ("GET", "/gateway/requests"),
    ("GET", "/gateway/requests/{request_id}"),
    ("POST", "/gateway/exports"),
    ("GET", "/gateway/exports/{id}"),
    ("GET", "/gateway/exports/{id}/download"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
}
QUERY_OPERATIONS = {
    ("POST", "/gateway/analytics"),
    ("GET", "/gateway/geographical-stats"),
    ("GET", "/gateway/top-routes"),
    ("GET", "/gateway/client-analytics"),
    ("GET", "/gateway/blocking-stats"),
    ("POST", "/gateway/saved-queries/{id}/run"),
    ("GET", "/gateway/dashboards/{view}"),
    ("GET", "/gateway/requests"),
    ("GET", "/gateway/requests/{request_id}"),
    ("POST", "/gateway/exports"),
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def test_the_fuzzed_schema_has_every_operation() -> None:
    operations = [result.ok() for result in schema.get_all_operations()]
    fuzzed = {(op.method.upper(), op.path) for op in operations}
    assert fuzzed == EXPECTED_OPERATIONS


def test_every_error_answer_is_documented_with_the_one_envelope(document: dict[str, Any]):
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    error_schema = document["components"]["schemas"]["ErrorEnvelope"]
    assert set(error_schema["required"]) == {"success", "error"}
    assert not [
        name
        for name in document["components"]["schemas"]
        if "Error" in name and (name not in ("ErrorEnvelope", "ErrorBody"))
    ]
    for method, path, operation in _operations(document):
        responses = operation["responses"]
        for code, response in responses.items():
            if code[0] in "45":
                assert response["content"]["application/json"]["schema"] == envelope, (
                    method,
                    path,
                    code,
                )
                assert response["description"], (method, path, code)
        if path in ("/healthz", "/metrics"):
            continue
        if path == "/readyz":
            assert set(responses) == {"200", "503"}
            continue
        codes = set(responses)
        assert {"400", "401", "429"} <= codes, (method, path)
        if method in ("POST", "PUT", "PATCH") and "requestBody" in operation:
            assert "413" in codes, (method, path)
        if "{" in path:
            assert "404" in codes, (method, path)
        if (method, path) in QUERY_OPERATIONS:
            assert {"403", "422", "503", "504"} <= codes, (method, path)
        else:
            assert not {"422", "503", "504"} & codes, (method, path)
        assert "Retry-After" in responses["429"].get("headers", {}), (method, path)


def test_operations_are_tagged_by_area_and_described_in_prose(document: dict[str, Any]):
    areas = [tag["name"] for tag in TAGS]
    assert [tag["name"] for tag in document["tags"]] == areas
    assert {tag for _, tag in AREA_TAGS} == set(areas)
    used = set()
    for method, path, operation in _operations(document):
        assert len(operation["tags"]) == 1, (method, path)
        assert operation["tags"][0] in areas, (method, path)
        used.add(operation["tags"][0])
    assert used == set(areas)
    text = str(document)
    assert "``" not in text  # RST literals: descriptions are CommonMark prose


def test_uuids_and_country_codes_are_typed(document: dict[str, Any]):
    for _method, path, operation in _operations(document):
        for parameter in operation.get("parameters", []):
            name, parameter_schema = parameter["name"], parameter["schema"]
            if parameter["in"] == "path" and name == "id":
                assert parameter_schema == {"type": "string", "format": "uuid"}, (path, name)
            if name in ("project_id", "rule_id"):
                assert parameter_schema["format"] == "uuid", (path, name)
            if name in ("project_ids", "model_ids", "endpoint_ids"):
                assert parameter_schema["type"] == "array", (path, name)
                assert parameter_schema["items"] == {"type": "string", "format": "uuid"}
                assert (parameter["style"], parameter["explode"]) == ("form", False)
            if name == "country_code":
                assert parameter_schema["pattern"] == "^[A-Za-z]{2}$", path
    rule_config = document["components"]["schemas"]["BlockingRuleRequest"]["properties"][
        "rule_config"
    ]
    shapes = {shape["title"]: shape for shape in rule_config["oneOf"]}
    countries = shapes["country_blocking"]["properties"]["countries"]
    assert countries["items"]["pattern"] == "^[A-Za-z]{2}$"


def test_list_endpoints_share_one_page_shape(document: dict[str, Any]):
    for path in ("/gateway/blocking-rules", "/gateway/saved-queries"):
        operation = document["paths"][path]["get"]
        ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        page = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
        data = page["properties"]["data"]
        assert set(data["required"]) == {
            "count",
            "page",
            "page_size",
            "next",
            "previous",
            "results",
        }
        page_size = next(p for p in operation["parameters"] if p["name"] == "page_size")
        assert page_size["schema"]["maximum"] == MAX_PAGE_SIZE, path


@pytest.mark.parametrize("path", ["/gateway/blocking-rules", "/gateway/saved-queries"])
def test_list_pages_answer_in_the_documented_shape(superuser_client: Any, path: str):
    SavedQuery.objects.create(
        name="q", owner=superuser_client.user, endpoint="top-routes", params={}
    )
    BlockingRule.objects.create(
        name="r", rule_type="country_blocking", rule_config={"countries": ["KP"]}
    )
    body = superuser_client.get(path, {"page_size": 1}).json()
    assert body["success"] is True
    assert set(body["data"]) == {"count", "page", "page_size", "next", "previous", "results"}
    assert (body["data"]["count"], body["data"]["page"], body["data"]["page_size"]) == (1, 1, 1)
    assert len(body["data"]["results"]) == 1
    for bad in ("0", str(MAX_PAGE_SIZE + 1), "100000", "x", "1.5"):
        response = superuser_client.get(path, {"page_size": bad})
        assert response.status_code == 400, bad
        assert "page_size" in response.json()["error"]["details"], bad
    assert superuser_client.get(path, {"page": "0"}).status_code == 400
    past_the_end = superuser_client.get(path, {"page": "9"})
    assert past_the_end.status_code == 404
    assert past_the_end.json()["success"] is False
