"""GET /gateway/client-analytics against real chDB rows, checked against Python."""

from __future__ import annotations

import random
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from django.utils import timezone

from tests.conftest import make_row
from tests.test_top_routes import HOSTILE

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

URL = "/gateway/client-analytics"
P1 = uuid.UUID("11111111-1111-4111-8111-111111111111")
P2 = uuid.UUID("22222222-2222-4222-8222-222222222222")
WINDOW = {"start_time": "2025-01-01T00:00:00Z", "end_time": "2025-02-01T00:00:00Z"}

REQUESTS_UA = "python-requests/2.28.0"
CHROME_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0 Safari/537.36"
)
IPHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/16.0 Mobile/15E148 Safari/604.1"
)
HOSTILE_ID = "o'brien\"; DROP TABLE x; --\\ ünï"


def client_rows() -> list[dict[str, Any]]:
    rng = random.Random(3)

    def row(client_id: str, **values: Any) -> dict[str, Any]:
        values.setdefault("project_id", P1)
        day, hour = rng.randrange(1, 31), rng.randrange(24)
        values.setdefault("timestamp", datetime(2025, 1, day, hour, tzinfo=UTC))
        return make_row(
            client_id=client_id,
            status_code=rng.choice([200, 200, 200, 401, 500]),
            response_time_ms=rng.randrange(10, 900),
            total_tokens=rng.randrange(0, 3000),
            cost=round(rng.random(), 6),
            **values,
        )

    rows = []
    for i in range(30):
        rows.append(
            row(
                "key-alpha",
                client_ip="10.0.0.1" if i < 15 else "10.0.0.2" if i < 25 else "",
                user_agent=REQUESTS_UA if i < 20 else CHROME_UA,
                country_code="US" if i % 2 else "DE",
            )
        )
    for i in range(12):
        rows.append(
            row(
                "key-beta",
                client_ip="192.168.1.9" if i % 2 else "192.168.1.3",  # tie: smallest wins
                user_agent=IPHONE_UA,
                device_type="mobile",
                browser="Mobile Safari",
                os="iOS",
                country_code="FR",
            )
        )
    rows += [row(HOSTILE_ID, client_ip="::1") for _ in range(3)]
    for i in range(23):
        rows += [row(f"bulk-{i:02d}", client_ip=f"172.16.0.{i}") for _ in range(1 + i % 4)]
    rows += [row("", client_ip="10.9.9.9") for _ in range(5)]  # anonymous: not a client
    rows += [row("key-p2", project_id=P2) for _ in range(40)]
    rows += [row("key-late", timestamp=datetime(2025, 2, 1, tzinfo=UTC))]
    return rows


def _most_frequent(values: list[str]) -> str | None:
    counts = Counter(v for v in values if v)
    if not counts:
        return None
    return min(counts, key=lambda v: (-counts[v], v))


def expected_clients(rows, projects=(P1,)) -> dict[str, dict[str, Any]]:
    start, end = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["project_id"] in projects and start <= r["timestamp"] < end and r["client_id"]:
            groups[r["client_id"]].append(r)
    return {
        client_id: {
            "client_id": client_id,
            "client_ip": _most_frequent([r["client_ip"] for r in group]),
            "request_count": len(group),
            "error_count": sum(r["status_code"] >= 400 for r in group),
            "avg_response_time": sum(r["response_time_ms"] for r in group) / len(group),
            "total_tokens": sum(r["total_tokens"] for r in group),
            "total_cost": sum(r["cost"] for r in group),
            "last_activity": max(r["timestamp"] for r in group).isoformat().replace("+00:00", "Z"),
            "user_agent": _most_frequent([r["user_agent"] for r in group]),
            "unique_ips": len({r["client_ip"] for r in group if r["client_ip"]}),
            "countries": sorted({r["country_code"] for r in group if r["country_code"]}),
        }
        for client_id, group in groups.items()
    }


@pytest.fixture
def client_data(clickhouse):
    rows = client_rows()
    clickhouse(rows)
    return rows


def _get(client, **params):
    response = client.get(URL, {**WINDOW, **params})
    return response, response.json()


def test_every_client_metric_matches_python_over_the_same_rows(superuser_client, client_data):
    response, body = _get(superuser_client, project_ids=str(P1), limit=1000)
    assert response.status_code == 200, body
    want = expected_clients(client_data)
    clients = body["data"]["clients"]
    assert len(clients) == len(want)
    for client in clients:
        for name, value in want[client["client_id"]].items():
            if isinstance(value, float):
                assert client[name] == pytest.approx(value, rel=1e-9), name
            else:
                assert client[name] == value, (client["client_id"], name)


def test_device_fields_come_from_the_gateway_else_from_ua_parser(superuser_client, client_data):
    _, body = _get(superuser_client, project_ids=str(P1), limit=1000)
    by_id = {c["client_id"]: c for c in body["data"]["clients"]}
    alpha, beta = by_id["key-alpha"], by_id["key-beta"]
    assert (alpha["user_agent"], alpha["browser"], alpha["os"]) == (
        REQUESTS_UA,
        "Python Requests",
        None,
    )
    assert alpha["device_type"] == "other"
    assert (beta["device_type"], beta["browser"], beta["os"]) == ("mobile", "Mobile Safari", "iOS")
    assert by_id["bulk-00"]["user_agent"] is None
    assert by_id["bulk-00"]["device_type"] is None


def test_client_ips_are_masked_when_anonymize_ips_is_on(settings, superuser_client, client_data):
    settings.ANONYMIZE_IPS = True
    _, body = _get(superuser_client, search="key-alpha")
    assert body["data"]["clients"][0]["client_ip"] == "10.0.0.0"


def test_summary_counts_every_matching_client_not_only_the_page(superuser_client, client_data):
    _, body = _get(superuser_client, project_ids=str(P1), limit=1)
    want = expected_clients(client_data)
    assert len(body["data"]["clients"]) == 1
    assert body["data"]["summary"] == {
        "total_clients": len(want),
        "total_requests": sum(c["request_count"] for c in want.values()),
    }


@pytest.mark.parametrize(
    ("order_by", "key"),
    [
        ("requests", "request_count"),
        ("errors", "error_count"),
        ("tokens", "total_tokens"),
        ("cost", "total_cost"),
        ("last_activity", "last_activity"),
    ],
)
def test_pages_follow_next_links_without_duplicates_or_gaps(
    superuser_client, client_data, order_by, key
):
    want = expected_clients(client_data)
    ranked = sorted(want.values(), key=lambda c: c["client_id"])
    ranked.sort(key=lambda c: c[key], reverse=True)  # stable: ties stay by client_id
    seen: list[str] = []
    response, body = _get(superuser_client, project_ids=str(P1), limit=4, order_by=order_by)
    pages = 0
    while True:
        assert response.status_code == 200, body
        pagination = body["data"]["pagination"]
        assert pagination["limit"] == 4
        assert pagination["offset"] == 4 * pages
        seen += [c["client_id"] for c in body["data"]["clients"]]
        pages += 1
        if not pagination["next"]:
            assert pagination["has_more"] is False
            break
        assert pagination["has_more"] is True
        next_url = urlparse(pagination["next"])
        assert next_url.path == URL
        assert parse_qs(next_url.query)["order_by"] == [order_by]
        response = superuser_client.get(pagination["next"])
        body = response.json()
    assert seen == [c["client_id"] for c in ranked]
    assert pages == -(-len(want) // 4)


def test_previous_link_points_one_page_back(superuser_client, client_data):
    _, body = _get(superuser_client, limit=5, offset=7)
    previous = parse_qs(urlparse(body["data"]["pagination"]["previous"]).query)
    assert previous["offset"] == ["2"]
    _, first = _get(superuser_client, limit=5)
    assert first["data"]["pagination"]["previous"] is None


def test_offset_past_the_end_is_an_empty_page_with_totals(superuser_client, client_data):
    _, body = _get(superuser_client, project_ids=str(P1), offset=500)
    want = expected_clients(client_data)
    assert body["data"]["clients"] == []
    assert body["data"]["pagination"]["has_more"] is False
    assert body["data"]["summary"]["total_clients"] == len(want)


def test_search_matches_client_id_substrings_case_insensitively(superuser_client, client_data):
    _, body = _get(superuser_client, project_ids=str(P1), search="KEY-")
    assert {c["client_id"] for c in body["data"]["clients"]} == {"key-alpha", "key-beta"}
    assert body["data"]["summary"]["total_clients"] == 2


def test_search_treats_sql_as_text(superuser_client, client_data):
    _, body = _get(superuser_client, search="'brien\"; DROP TABLE x; --\\ Ü")
    assert [c["client_id"] for c in body["data"]["clients"]] == [HOSTILE_ID]
    _, body = _get(superuser_client, search="') OR 1=1 --")
    assert body["data"]["clients"] == []


def test_device_browser_os_filters_use_stored_fields_or_the_parsed_agent(
    superuser_client, client_data
):
    def ids_and_counts(**filters):
        _, body = _get(superuser_client, project_ids=str(P1), **filters)
        assert body["success"], body
        return [(c["client_id"], c["request_count"]) for c in body["data"]["clients"]]

    assert ids_and_counts(device_type="mobile") == [("key-beta", 12)]
    assert ids_and_counts(device_type="Desktop") == [("key-alpha", 10)]  # the Chrome rows
    assert ids_and_counts(browser="python requests") == [("key-alpha", 20)]
    assert ids_and_counts(browser="chrome", os="Windows") == [("key-alpha", 10)]
    assert ids_and_counts(os="ios") == [("key-beta", 12)]
    assert ids_and_counts(device_type="bot") == []


def test_defaults_cover_the_last_seven_days(superuser_client, clickhouse):
    now = timezone.now()
    clickhouse(
        [
            make_row(client_id="recent", timestamp=now - timedelta(days=2)),
            make_row(client_id="stale", timestamp=now - timedelta(days=8)),
        ]
    )
    response = superuser_client.get(URL)
    assert response.status_code == 200, response.json()
    assert [c["client_id"] for c in response.json()["data"]["clients"]] == ["recent"]


def test_restricted_client_never_sees_another_projects_clients(api_client_factory, client_data):
    _, body = _get(api_client_factory([P2]))
    assert [(c["client_id"], c["request_count"]) for c in body["data"]["clients"]] == [
        ("key-p2", 40)
    ]
    _, body = _get(api_client_factory([P2]), search="alpha")
    assert body["data"]["clients"] == []


def test_restricted_client_asking_for_a_foreign_project_gets_403(api_client_factory, client_data):
    response, body = _get(api_client_factory([P2]), project_ids=f"{P1},{P2}")
    assert response.status_code == 403
    assert str(P1) in body["error"]["message"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"offset": "99999999999999999999"}, "offset"),
        ({"order_by": "cheapest"}, "order_by"),
        ({"device_type": "toaster"}, "device_type"),
        ({"search": "x" * 201}, "search"),
        ({"project_ids": "abc,def"}, "project_ids"),
        ({"start_time": "2025-01-10T00:00:00", "end_time": "2025-01-10T00:00:00"}, "end_time"),
    ],
)
def test_invalid_parameters_are_400_naming_the_field(superuser_client, clickhouse, params, field):
    response, body = _get(superuser_client, **params)
    assert response.status_code == 400, body
    assert body["error"]["code"] == "invalid_request"
    assert field in body["error"]["details"]


@pytest.mark.parametrize(
    "param",
    [
        "start_time",
        "end_time",
        "project_ids",
        "model_ids",
        "endpoint_ids",
        "limit",
        "offset",
        "order_by",
        "search",
        "device_type",
        "browser",
        "os",
    ],
)
def test_hostile_input_is_a_400_or_a_correct_answer_never_a_500(
    superuser_client, client_data, param
):
    want = expected_clients(client_data)
    for value in HOSTILE:
        response = superuser_client.get(URL, {**WINDOW, "project_ids": str(P1), param: value})
        assert response.status_code in (200, 400), (value[:40], response.content[:300])
        body = response.json()
        assert body["success"] is (response.status_code == 200)
        if response.status_code == 200 and param == "search" and value:
            found = {c["client_id"] for c in body["data"]["clients"]}
            assert found == {c for c in want if value.lower() in c.lower()} & found, value[:40]
            assert len(found) == min(50, len({c for c in want if value.lower() in c.lower()}))
        if response.status_code == 200 and param in ("browser", "os") and value.strip():
            assert body["data"]["clients"] == [], value[:40]
