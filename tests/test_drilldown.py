"""Drill-down: every analytics point turns (meta.drilldown + point_params) into the
request-log query that lists exactly its rows — the row count equals the point's
total_requests for several buckets, groups, top-N with `other`, filters and zones (a
+5:30 zone, a DST change, unaligned range starts)."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analytics.query.drilldown import point_params
from tests.conftest import make_row

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

P1 = uuid.UUID("11111111-1111-4111-8111-111111111111")
P2 = uuid.UUID("22222222-2222-4222-8222-222222222222")
# Around the US change to summer time (2025-03-09) and across several days.
START = datetime(2025, 3, 7, 0, 0, tzinfo=UTC)


@pytest.fixture
def traffic(clickhouse) -> list[dict[str, Any]]:
    rnd = random.Random(13)
    rows = []
    for _ in range(1500):
        rows.append(
            make_row(
                project_id=rnd.choice([P1, P1, P2]),
                timestamp=START + timedelta(seconds=rnd.randrange(5 * 86400)),
                model_name=rnd.choice(["gpt-4o", "claude", "llama", "", "other", "=x,y"]),
                status_code=rnd.choice([200, 200, 200, 404, 500, 503]),
                country_code=rnd.choice(["US", "DE", "IN", ""]),
                tags=rnd.choice([{"team": "a"}, {"team": "b"}, {}, {"team": "c", "env": "p"}]),
                response_time_ms=rnd.randrange(10, 2000),
            )
        )
    clickhouse(rows)
    return rows


CASES = [
    {"time_bucket": "1h", "timezone": "Asia/Kolkata", "group_by": ["model_name"],
     "start_time": "2025-03-07T10:17:00Z", "end_time": "2025-03-08T03:41:00Z"},
    {"time_bucket": "15m", "timezone": "Asia/Kolkata", "start_time": "2025-03-08T00:00:00Z",
     "end_time": "2025-03-08T06:00:00Z", "filters": {"status_code": {"op": "gte", "value": 500}}},
    {"time_bucket": "1d", "timezone": "America/New_York", "group_by": ["model_name", "status_code"],
     "top_n": 4, "include_other": True},
    {"time_bucket": "6h", "timezone": "Europe/Berlin", "group_by": ["tag:team"],
     "filters": {"or": [{"country_code": ["US", "IN"]},
                        {"country_code": {"op": "is_empty", "value": True}}]}},
    {"time_bucket": "1h", "timezone": "America/New_York", "group_by": ["model_name"], "top_n": 2,
     "include_other": True, "start_time": "2025-03-09T03:00:00Z",
     "end_time": "2025-03-09T12:00:00Z", "project_ids": [str(P1)]},
    {"time_bucket": "1w", "timezone": "Asia/Kolkata", "group_by": ["country_code"]},
]  # fmt: skip


def _count(client: Any, params: dict[str, str]) -> int:
    response = client.get(
        "/gateway/requests", {**params, "fields": "request_id", "format": "ndjson"}
    )
    assert response.status_code == 200, response.content if not response.streaming else params
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert all("_truncated" not in line for line in lines)
    return len(lines)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['time_bucket']}-{c['timezone']}")
def test_a_points_drilldown_lists_exactly_its_rows(case, superuser_client, traffic):
    body = {
        "start_time": "2025-03-07T00:00:00Z",
        "end_time": "2025-03-12T00:00:00Z",
        "metrics": ["total_requests"],
        **case,
    }
    response = superuser_client.post("/gateway/analytics", body, format="json")
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    drilldown = data["meta"]["drilldown"]
    assert drilldown["path"] == "/gateway/requests"
    points = data["time_series"]
    nonzero = [p for p in points if p["metrics"]["total_requests"]]
    # Each point with rows (up to 12, the largest and the `other` ones first) and a few
    # empty ones; all of them in a small case.
    nonzero.sort(key=lambda p: (p["groups"] and "other" not in p["groups"].values(),
                                -p["metrics"]["total_requests"]))  # fmt: skip
    sample = nonzero[:12] + [p for p in points if not p["metrics"]["total_requests"]][:2]
    assert nonzero
    for point in sample:
        params = point_params(drilldown, point)
        assert _count(superuser_client, params) == point["metrics"]["total_requests"], (
            point,
            params,
        )
    if case.get("include_other"):
        assert any("other" in p["groups"].values() for p in sample)
    # The points together are every row in range: drilling into all of them partitions it.
    if len(points) <= 40 and not case.get("top_n"):
        total = sum(_count(superuser_client, point_params(drilldown, p)) for p in points)
        assert total == data["summary"]["total_requests"]


def test_the_drilldown_carries_the_requests_filters_and_scope(superuser_client, traffic):
    body = {
        "start_time": "2025-03-07T00:00:00Z",
        "end_time": "2025-03-08T00:00:00Z",
        "time_bucket": "1h",
        "project_ids": [str(P2)],
        "filters": {"status_code": 404},
    }
    drilldown = superuser_client.post("/gateway/analytics", body, format="json").json()["data"][
        "meta"
    ]["drilldown"]
    assert drilldown["params"]["project_ids"] == str(P2)
    assert drilldown["filters"] == {"status_code": {"op": "eq", "value": 404}}
    params = point_params(drilldown, {"timestamp": "2025-03-07T05:00:00Z", "groups": {}})
    assert json.loads(params["filters"]) == {"status_code": {"op": "eq", "value": 404}}
    assert params["bucket_start"] == "2025-03-07T05:00:00Z"
