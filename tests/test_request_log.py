"""GET /gateway/requests and /gateway/requests/{id} on real chDB rows: cursor paging that
stays exact while rows arrive, signed cursors bound to the query and the caller, the field
whitelist, scope, and IP masking."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from analytics.models import GatewayAnalytics
from analytics.requests_log.queries import FIELDS
from tests.conftest import make_row

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

URL = "/gateway/requests"
P1 = uuid.UUID("11111111-1111-4111-8111-111111111111")
P2 = uuid.UUID("22222222-2222-4222-8222-222222222222")
T0 = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
WINDOW = {"start_time": "2025-01-15T00:00:00Z", "end_time": "2025-01-16T00:00:00Z"}


def _rows(n: int, project: uuid.UUID = P1, **values: Any) -> list[dict[str, Any]]:
    # Timestamps repeat in threes, so ties on timestamp are broken by request_id.
    return [
        make_row(project_id=project, timestamp=T0 + timedelta(seconds=i // 3), **values)
        for i in range(n)
    ]


def _follow(client: Any, url: str) -> tuple[int, dict[str, Any]]:
    parts = urlsplit(url)
    response = client.get(parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()})
    return response.status_code, response.json()


def _page(client: Any, **params: Any) -> dict[str, Any]:
    response = client.get(URL, params)
    assert response.status_code == 200, response.content
    return response.json()["data"]


def test_the_field_whitelist_is_every_stored_column():
    assert tuple(f.column for f in GatewayAnalytics._meta.local_fields) == FIELDS


@pytest.mark.parametrize("order", ["newest", "oldest"])
def test_paging_while_rows_arrive_returns_every_existing_row_exactly_once(
    order, superuser_client, clickhouse
):
    existing = _rows(23)
    clickhouse(existing)
    data = _page(superuser_client, **WINDOW, order=order, limit=5, fields="request_id,timestamp")
    seen = [r["request_id"] for r in data["requests"]]
    stamps = [r["timestamp"] for r in data["requests"]]
    arrivals = 0
    while data["next"]:
        # New traffic between pages: newer, older and tied with rows already paged.
        clickhouse(
            [
                make_row(project_id=P1, timestamp=T0 + timedelta(seconds=arrivals)),
                make_row(project_id=P1, timestamp=T0 + timedelta(hours=1, seconds=arrivals)),
                make_row(project_id=P1, timestamp=T0 - timedelta(minutes=5)),
            ]
        )
        arrivals += 1
        status, body = _follow(superuser_client, data["next"])
        assert status == 200, body
        data = body["data"]
        seen += [r["request_id"] for r in data["requests"]]
        stamps += [r["timestamp"] for r in data["requests"]]
    assert arrivals >= 4
    assert len(seen) == len(set(seen)), "a row appeared twice"
    assert {str(r["request_id"]) for r in existing} <= set(seen), "a row was skipped"
    ordered = sorted(stamps, reverse=order == "newest")
    assert stamps == ordered


def test_a_page_has_the_asked_fields_in_the_asked_order(superuser_client, clickhouse):
    rows = _rows(3, path="/v1/x", client_ip="203.0.113.7", tags={"team": "a"})
    clickhouse(rows)
    data = _page(superuser_client, **WINDOW, fields="path,client_ip,tags,request_id", limit=10)
    assert [list(r) for r in data["requests"]] == [["path", "client_ip", "tags", "request_id"]] * 3
    assert data["requests"][0]["tags"] == {"team": "a"}
    assert data["next"] is None
    every = _page(superuser_client, **WINDOW, limit=1)["requests"][0]
    assert list(every) == list(FIELDS)


def test_an_unknown_field_or_an_over_cap_limit_is_a_400_naming_it(superuser_client, clickhouse):
    response = superuser_client.get(URL, {**WINDOW, "fields": "path,password"})
    assert response.status_code == 400
    assert "password" in response.content.decode()
    assert "fields" in response.json()["error"]["details"]
    response = superuser_client.get(URL, {**WINDOW, "limit": "1001"})
    assert response.status_code == 400
    assert "REQUEST_LOG_MAX_LIMIT" in response.content.decode()
    response = superuser_client.get(URL, {**WINDOW, "filters": '{"nope": 1}'})
    assert response.status_code == 400
    assert "nope" in response.content.decode()


def test_filters_use_the_analytics_grammar(superuser_client, clickhouse):
    clickhouse(
        [
            *_rows(4, status_code=200),
            *_rows(3, status_code=503, method="GET"),
            *_rows(2, status_code=404, method="POST"),
        ]
    )
    filters = '{"or": [{"status_code": {"op": "gte", "value": 500}}, {"status_code": 404}]}'
    data = _page(superuser_client, **WINDOW, filters=filters, fields="status_code")
    assert sorted(r["status_code"] for r in data["requests"]) == [404, 404, 503, 503, 503]


def _cursor_url(client: Any) -> str:
    data = _page(client, **WINDOW, limit=2)
    assert data["next"]
    return data["next"]


def test_a_tampered_cursor_is_a_400(superuser_client, clickhouse):
    clickhouse(_rows(6))
    url = _cursor_url(superuser_client)
    parts = urlsplit(url)
    params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    cursor = params["cursor"]
    for forged in (cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB"), "x" + cursor, "abc"):
        response = superuser_client.get(parts.path, {**params, "cursor": forged})
        assert response.status_code == 400, forged
        assert "cursor" in response.json()["error"]["details"]
    # The same cursor with other filters, times or order belongs to another query.
    for change in ({"order": "oldest"}, {"start_time": "2025-01-14T00:00:00Z"}, {"filters": "{}"}):
        response = superuser_client.get(parts.path, {**params, **change})
        assert response.status_code == 400, change
        assert "different query" in response.content.decode()


def test_another_callers_cursor_cannot_widen_access(api_client_factory, clickhouse):
    clickhouse([*_rows(6, project=P1), *_rows(6, project=P2)])
    reader_one = api_client_factory([P1])
    reader_both = api_client_factory([P1, P2], all_projects=True)
    url = _cursor_url(reader_one)
    for other in (reader_both, api_client_factory([P2])):
        status, body = _follow(other, url)
        assert status == 400
        assert "another caller" in body["error"]["message"] + str(body["error"]["details"])
    # The owner pages on, and only ever within its own scope.
    seen: list[str] = []
    while url:
        status, body = _follow(reader_one, url)
        assert status == 200
        seen += [r["project_id"] for r in body["data"]["requests"]]
        url = body["data"]["next"]
    assert set(seen) == {str(P1)}


def test_project_ids_outside_the_scope_are_a_403(api_client_factory, clickhouse):
    reader = api_client_factory([P1])
    response = reader.get(URL, {**WINDOW, "project_ids": str(P2)})
    assert response.status_code == 403


def test_one_request_by_id_is_404_outside_the_callers_scope(api_client_factory, clickhouse):
    mine, theirs = make_row(project_id=P1, path="/mine"), make_row(project_id=P2)
    clickhouse([mine, theirs])
    reader = api_client_factory([P1])
    response = reader.get(f"{URL}/{mine['request_id']}")
    assert response.status_code == 200
    assert response.json()["data"]["path"] == "/mine"
    assert response.json()["data"]["request_id"] == str(mine["request_id"])
    assert reader.get(f"{URL}/{theirs['request_id']}").status_code == 404
    assert reader.get(f"{URL}/{uuid.uuid4()}").status_code == 404


def test_ips_are_masked_when_anonymize_ips_is_on(settings, superuser_client, clickhouse):
    row = make_row(project_id=P1, timestamp=T0, client_ip="203.0.113.7")
    clickhouse([row])
    assert _page(superuser_client, **WINDOW, fields="client_ip")["requests"] == [
        {"client_ip": "203.0.113.7"}
    ]
    settings.ANONYMIZE_IPS = True
    assert _page(superuser_client, **WINDOW, fields="client_ip")["requests"] == [
        {"client_ip": "203.0.113.0"}
    ]
    detail = superuser_client.get(f"{URL}/{row['request_id']}").json()["data"]
    assert detail["client_ip"] == "203.0.113.0"


def test_pages_are_audited(superuser_client, clickhouse):
    from analytics.access.models import QueryAudit

    clickhouse(_rows(3))
    _page(superuser_client, **WINDOW, limit=2)
    audit = QueryAudit.objects.filter(endpoint="requests").latest("created_at")
    assert audit.rows_returned == 2
    assert audit.status_code == 200
