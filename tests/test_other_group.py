"""The `other` group of top_n is told apart from every stored value: a path, a tag or any
string equal to the old sentinel (or to the fold markers) is an ordinary group."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from tests.conftest import make_row

pytest_plugins = ["tests.access_fixtures"]
pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

P1 = uuid.UUID("11111111-1111-1111-1111-111111111111")
AT = datetime(2025, 2, 3, 10, tzinfo=UTC)
TRICKY = {"__other__": 4, "*": 3, "=x": 2, "other": 1, "plain": 5}


@pytest.fixture
def rows(clickhouse):
    clickhouse(
        [
            make_row(project_id=P1, timestamp=AT, path=path, tags={"team": path})
            for path, count in TRICKY.items()
            for _ in range(count)
        ]
    )


def ask(client, **extra):
    body = {
        "project_ids": [str(P1)],
        "start_time": "2025-02-03T00:00:00Z",
        "end_time": "2025-02-04T00:00:00Z",
        "time_bucket": "1d",
        "metrics": ["total_requests"],
        **extra,
    }
    response = client.post("/gateway/analytics", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()["data"]


def counts(data, dimension):
    return {p["groups"][dimension]: p["metrics"]["total_requests"] for p in data["time_series"]}


@pytest.mark.parametrize("dimension", ["path", "tag:team"])
def test_values_like_the_sentinel_are_ordinary_groups(superuser_client, rows, dimension):
    data = ask(superuser_client, group_by=[dimension])
    assert counts(data, dimension) == TRICKY
    assert data["summary"]["total_requests"] == sum(TRICKY.values())


@pytest.mark.parametrize("dimension", ["path", "tag:team"])
def test_top_n_folds_the_rest_into_one_other_apart_from_a_real_other(
    superuser_client, rows, dimension
):
    data = ask(superuser_client, group_by=[dimension], top_n=2, include_other=True)
    # The two largest are "plain" (5) and "__other__" (4); the rest (3 + 2 + 1) is `other`,
    # and the stored value "other" is inside it, not merged with it by name.
    assert [p["groups"][dimension] for p in data["time_series"]] == ["plain", "__other__", "other"]
    assert [p["metrics"]["total_requests"] for p in data["time_series"]] == [5, 4, 6]
    without = ask(superuser_client, group_by=[dimension], top_n=2)
    assert counts(without, dimension) == {"plain": 5, "__other__": 4}
    assert without["summary"]["total_requests"] == 15


def test_requests_per_second_without_gap_filling_divides_by_each_buckets_own_width(
    superuser_client, clickhouse
):
    """Buckets with data at 00:00 and 03:00 only: each is one hour wide, not three."""
    clickhouse(
        [make_row(project_id=P1, timestamp=datetime(2025, 2, 3, 0, 10, tzinfo=UTC))] * 36
        + [make_row(project_id=P1, timestamp=datetime(2025, 2, 3, 3, 10, tzinfo=UTC))] * 72
    )
    data = ask(
        superuser_client,
        time_bucket="1h",
        metrics=["total_requests", "requests_per_second"],
        fill_gaps=False,
    )
    rates = [p["metrics"]["requests_per_second"] for p in data["time_series"]]
    assert rates == [36 / 3600, 72 / 3600]
