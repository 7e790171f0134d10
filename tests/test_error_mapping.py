"""What a ClickHouse failure means to a client and to a Celery task: the row cap is about
the request (400 naming the field), memory limits are 422, timeouts 504, and a refresh the
endpoint refuses is reported, not retried."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from analytics.saved_queries import SavedQuery
from analytics.tasks import refresh_saved_query
from budmetrics_site.clickhouse.client import translate_error
from budmetrics_site.errors import to_api_exception
from budmetrics_site.exceptions import (
    QueryTimeoutError,
    QueryTooLargeError,
    TooManyResultRowsError,
)
from tests import analytics_oracle as oracle
from tests.conftest import make_row

pytest_plugins = ["tests.access_fixtures"]
pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])


@pytest.mark.parametrize(
    ("code", "kind", "status"),
    [
        (158, TooManyResultRowsError, 422),
        (396, TooManyResultRowsError, 422),
        (241, QueryTooLargeError, 422),
        (159, QueryTimeoutError, 504),
    ],
)
def test_engine_error_codes_become_domain_errors_with_their_status(code, kind, status):
    domain = translate_error(DatabaseError(f"Code: {code}. DB::Exception: limit. (NAME)"))
    assert type(domain) is kind
    assert to_api_exception(domain).status_code == status


def test_a_memory_failure_is_not_reported_as_too_many_points():
    """Only the row cap is explained as too many points; memory stays the documented 422."""
    assert not isinstance(translate_error(DatabaseError("Code: 241. x")), TooManyResultRowsError)


def test_a_refresh_the_endpoint_refuses_is_reported_not_retried(superuser, clickhouse, settings):
    """24 hourly buckets fit the serializer's check, but two groups make 48 points: the
    query layer refuses (a domain error, not a DRF one) and the task reports "400"."""
    at = datetime(2024, 1, 1, tzinfo=UTC)
    clickhouse(
        [
            make_row(project_id=oracle.PROJECTS[0], timestamp=at, model_name=name)
            for name in ("a", "b")
        ]
    )
    saved = SavedQuery.objects.create(
        name="too big",
        endpoint="analytics",
        owner=superuser,
        time_window="absolute",
        params={
            "start_time": "2024-01-01T00:00:00Z",
            "end_time": "2024-01-02T00:00:00Z",
            "time_bucket": "1h",
            "metrics": ["total_requests"],
            "group_by": ["model_name"],
        },
        refresh_interval=60,
    )
    settings.MAX_RESULT_SIZE = 30
    assert refresh_saved_query.apply(args=[str(saved.pk)]).get() == "400"
