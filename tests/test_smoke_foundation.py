import pytest

from analytics.models import GatewayAnalytics
from tests.conftest import make_row

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])


def test_rows_inserted_by_column_name_are_counted_by_the_orm(clickhouse):
    clickhouse([make_row(status_code=200), make_row(status_code=503)])
    assert GatewayAnalytics.objects.count() == 2
    assert GatewayAnalytics.objects.filter(status_code__gte=500).count() == 1


def test_default_database_is_postgres_when_database_url_points_there(settings):
    from django.db import connection

    assert connection.vendor == "postgresql"
