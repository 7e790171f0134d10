"""The service foundation: schema in ClickHouse, settings, health, error envelope, request
ids, OpenAPI, and ClickHouse outages answered as JSON."""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections
from django.test import override_settings

from analytics import schema
from tests.conftest import clickhouse_client, make_row

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

REPO = Path(__file__).resolve().parent.parent

EXPECTED_COLUMNS = {
    "request_id": "UUID",
    "timestamp": "DateTime64(3, 'UTC')",
    "project_id": "UUID",
    "model_id": "UUID",
    "endpoint_id": "UUID",
    "model_name": "LowCardinality(String)",
    "model_provider": "LowCardinality(String)",
    "client_id": "String",
    "user_id": "String",
    "client_ip": "String",
    "country_code": "LowCardinality(String)",
    "region": "LowCardinality(String)",
    "city": "LowCardinality(String)",
    "latitude": "Float32",
    "longitude": "Float32",
    "user_agent": "String",
    "device_type": "LowCardinality(String)",
    "browser": "LowCardinality(String)",
    "browser_version": "LowCardinality(String)",
    "os": "LowCardinality(String)",
    "os_version": "LowCardinality(String)",
    "is_bot": "Bool",
    "method": "LowCardinality(String)",
    "path": "String",
    "status_code": "UInt16",
    "response_time_ms": "UInt32",
    "gateway_processing_ms": "UInt32",
    "input_tokens": "UInt32",
    "output_tokens": "UInt32",
    "total_tokens": "UInt32",
    "cost": "Float64",
    "request_size": "UInt32",
    "response_size": "UInt32",
    "is_blocked": "Bool",
    "block_reason": "LowCardinality(String)",
    "block_rule_id": "UUID",
    "error_type": "LowCardinality(String)",
    "is_streaming": "Bool",
    "ttft_ms": "UInt32",
    "routing_decision": "LowCardinality(String)",
    "attempts": "UInt8",
    "finish_reason": "LowCardinality(String)",
    "cached_input_tokens": "UInt32",
    "model_version": "LowCardinality(String)",
    "tags": "Map(String, String)",
}


def test_migration_creates_gateway_analytics_with_every_column():
    database = connections["clickhouse"].settings_dict["NAME"]
    rows = (
        clickhouse_client()
        .query(
            "SELECT name, type FROM system.columns WHERE database = {db:String} "
            "AND table = 'gateway_analytics' ORDER BY position",
            parameters={"db": database},
        )
        .result_rows
    )
    assert dict(rows) == EXPECTED_COLUMNS
    assert not any("Nullable" in t for _, t in rows)


def test_table_engine_partition_sort_key_ttl_and_skip_indexes():
    database = connections["clickhouse"].settings_dict["NAME"]
    client = clickhouse_client()
    engine, partition_key, sorting_key, ddl = client.query(
        "SELECT engine, partition_key, sorting_key, create_table_query FROM system.tables "
        "WHERE database = {db:String} AND name = 'gateway_analytics'",
        parameters={"db": database},
    ).result_rows[0]
    assert engine == "MergeTree"
    assert partition_key == "toYYYYMM(timestamp)"
    assert sorting_key == "project_id, timestamp"
    assert "TTL toDateTime(timestamp) + toIntervalDay(7300)" in ddl
    indexes = dict(
        client.query(
            "SELECT name, type FROM system.data_skipping_indices WHERE database = {db:String} "
            "AND table = 'gateway_analytics'",
            parameters={"db": database},
        ).result_rows
    )
    assert indexes["idx_client_id"] == "bloom_filter"
    assert indexes["idx_country_code"] == "set"
    assert set(indexes) == {name for name, *_ in schema.SKIP_INDEXES}


def _table_ddl() -> str:
    database = connections["clickhouse"].settings_dict["NAME"]
    return (
        clickhouse_client()
        .query(
            "SELECT create_table_query FROM system.tables "
            "WHERE database = {db:String} AND name = 'gateway_analytics'",
            parameters={"db": database},
        )
        .result_rows[0][0]
    )


def test_apply_retention_changes_an_existing_tables_ttl(settings):
    settings.CLICKHOUSE_RETENTION_DAYS = 30
    out = io.StringIO()
    try:
        call_command("apply_retention", stdout=out)
        assert "TTL toDateTime(timestamp) + toIntervalDay(30)" in _table_ddl()
        assert "keeps 30 days" in out.getvalue()
    finally:
        settings.CLICKHOUSE_RETENTION_DAYS = 7300
        call_command("apply_retention", stdout=io.StringIO())
    assert "TTL toDateTime(timestamp) + toIntervalDay(7300)" in _table_ddl()


def test_apply_retention_dry_run_and_cluster_statements(settings):
    settings.CLICKHOUSE_RETENTION_DAYS = 45
    out = io.StringIO()
    call_command("apply_retention", "--dry-run", stdout=out)
    assert "MODIFY TTL toDateTime(timestamp) + INTERVAL 45 DAY DELETE" in out.getvalue()
    assert "toIntervalDay(7300)" in _table_ddl()  # a dry run changes nothing
    (statement,) = schema.retention_statements(
        schema.TableOptions(database="budmetrics", retention_days=10, cluster="prod")
    )
    assert statement == (
        "ALTER TABLE `budmetrics`.`gateway_analytics_local` ON CLUSTER `prod` "
        "MODIFY TTL toDateTime(timestamp) + INTERVAL 10 DAY DELETE"
    )


def test_cluster_setting_prints_replicated_table_and_distributed_front():
    statements = schema.create_table_statements(
        schema.TableOptions(database="budmetrics", retention_days=30, cluster="prod")
    )
    local, distributed = statements
    assert (
        "CREATE TABLE IF NOT EXISTS `budmetrics`.`gateway_analytics_local` ON CLUSTER `prod`"
        in local
    )
    assert (
        "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/budmetrics/"
        "gateway_analytics_local', '{replica}')" in local
    )
    assert "TTL toDateTime(timestamp) + INTERVAL 30 DAY DELETE" in local
    assert "PARTITION BY toYYYYMM(timestamp)" in local
    assert "ON CLUSTER `prod` AS `budmetrics`.`gateway_analytics_local`" in distributed
    assert (
        "ENGINE = Distributed(`prod`, `budmetrics`, `gateway_analytics_local`, "
        "cityHash64(request_id))" in distributed
    )
    single = schema.create_table_statements(
        schema.TableOptions(database="budmetrics", retention_days=30)
    )
    assert len(single) == 1
    assert "ON CLUSTER" not in single[0]
    assert "ENGINE = MergeTree" in single[0]


def test_bulk_create_and_iterator_through_the_orm(clickhouse):
    from analytics.models import GatewayAnalytics

    rows = [GatewayAnalytics(**make_row(status_code=200 + i)) for i in range(3)]
    GatewayAnalytics.objects.bulk_create(rows)
    codes = sorted(r.status_code for r in GatewayAnalytics.objects.iterator())
    assert codes == [200, 201, 202]
    assert GatewayAnalytics.objects.filter(status_code__gt=200).count() == 2


# --- settings ---------------------------------------------------------------------------


def _start(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=REPO,
        env={
            **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME")},
            "DJANGO_SETTINGS_MODULE": "budmetrics_site.settings",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CLICKHOUSE_PORT", "eighty"),
        ("DEFAULT_TIME_BUCKET", "2h"),
        ("QUERY_TIMEOUT", "-1"),
        ("CACHE_ENABLED", "maybe"),
        ("MAX_RESULT_SIZE", "1e9"),
        ("DATABASE_URL", "nonsense://x"),
        ("REDIS_URL", "http://127.0.0.1"),
        ("CLICKHOUSE_RETENTION_DAYS", "100000"),
        ("DASHBOARD_REFRESH_INTERVAL", "30"),
        ("ROLLUP_DAY_ZONES", "Asia/Kolkata,Mars/Olympus"),
        ("ROLLUP_DAY_ZONES", "UTC"),
        ("ROLLUP_DAY_ZONES", "Asia/Kolkata');DROP TABLE x;--"),
    ],
)
def test_bad_setting_stops_start_up_with_one_line_naming_it(variable, value):
    result = _start({variable: value})
    assert result.returncode != 0
    lines = [line for line in result.stderr.strip().splitlines() if line]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Configuration error: {variable} ")


def test_defaults_are_the_embedded_ones(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings as s; "
            "print(s.DATABASES['default']['ENGINE'], s.CACHES['default']['BACKEND'], "
            "s.DATABASES['clickhouse']['OPTIONS']['dsn'].startswith('chdb://'), "
            "s.QUERY_TIMEOUT, s.MAX_QUERY_TIME_RANGE, s.DEFAULT_TIME_BUCKET, s.MAX_RESULT_SIZE, "
            "s.CACHE_TTL)",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME")},
            "DJANGO_SETTINGS_MODULE": "budmetrics_site.settings",
            "CLICKHOUSE_EMBEDDED_PATH": str(tmp_path / "chdb"),
        },
    )
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "django.core.cache.backends.locmem.LocMemCache",
        "True",
        "30",
        "90",
        "1h",
        "10000",
        "300",
    ], result.stderr


def test_every_setting_is_in_the_readme_table():
    readme = (REPO / "README.md").read_text()
    source = (REPO / "budmetrics_site" / "settings.py").read_text()
    names = set(
        re.findall(
            r'(?:_int|_bool|_choice|_rate|env\.str|env\.list|env\.db)\(\s*"([A-Z_]+)"', source
        )
    )
    assert names, "settings are read through the helpers"
    missing = sorted(n for n in names if f"`{n}`" not in readme)
    assert not missing, f"README configuration table lacks {missing}"


# --- health ------------------------------------------------------------------------------


def test_healthz_is_alive(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_checks_postgres_clickhouse_and_redis(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    checks = response.json()["data"]["checks"]
    assert checks["database"]["detail"] == "postgresql"
    assert checks["clickhouse"]["status"] == "ok"
    assert checks["redis"]["detail"] == "redis"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def clickhouse_down() -> Any:
    """Point the ClickHouse alias at a closed local port (HTTP transport)."""
    connection = connections["clickhouse"]
    saved = dict(connection.settings_dict)
    saved_options = dict(saved["OPTIONS"])
    connection.close()
    connection.connection = None
    connection.settings_dict.update(
        HOST="127.0.0.1",
        PORT=_closed_port(),
        USER="default",
        OPTIONS={"settings": {}, "connect_timeout": 1},
    )
    yield
    connection.settings_dict.clear()
    connection.settings_dict.update(saved)
    connection.settings_dict["OPTIONS"] = saved_options
    connection.connection = None
    connection.connect()


def test_readyz_is_503_naming_clickhouse_when_it_is_unreachable(client, clickhouse_down):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert "clickhouse" in body["error"]["message"]
    assert body["error"]["details"]["clickhouse"]["status"] == "error"
    assert body["error"]["details"]["database"]["status"] == "ok"


def test_data_endpoint_answers_json_503_when_clickhouse_is_unreachable(
    superuser_client, clickhouse_down
):
    response = superuser_client.post(
        "/gateway/analytics",
        {"start_time": "2024-01-01T00:00:00Z", "end_time": "2024-01-02T00:00:00Z"},
        format="json",
    )
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "service_unavailable"
    assert "Traceback" not in response.content.decode()


@override_settings(QUERY_TIMEOUT=1)
def test_query_over_the_time_limit_is_a_504_saying_how_to_narrow(superuser_client, clickhouse):
    from analytics.query.runner import execute
    from analytics.query.tree import BucketList
    from budmetrics_site.errors import QueryTimeout, to_api_exception

    # Minute buckets over 135 years: about 71 million instants, far more than 1 s of work.
    everything = BucketList(
        datetime(1970, 1, 1, tzinfo=UTC), datetime(2105, 1, 1, tzinfo=UTC), "1m", "UTC"
    )
    with pytest.raises(QueryTimeout) as caught:
        execute(everything)
    mapped = to_api_exception(caught.value)
    assert mapped.status_code == 504
    assert "shorter time range" in str(mapped.detail)


# --- envelope, request id, docs ----------------------------------------------------------


def test_unknown_url_is_a_json_404(client):
    response = client.get("/gateway/nowhere")
    assert response.status_code == 404
    assert response.json()["success"] is False


def test_request_id_is_echoed_or_made(client):
    made = client.get("/healthz")
    assert len(made["X-Request-ID"]) == 32
    echoed = client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")
    assert echoed["X-Request-ID"] == "abc-123"
    refused = client.get("/healthz", HTTP_X_REQUEST_ID="bad id\nwith newline")
    assert refused["X-Request-ID"] != "bad id\nwith newline"


def test_openapi_schema_generates_without_warnings_and_lists_endpoints():
    result = subprocess.run(  # noqa: S603 - fixed argv, test-only
        [
            sys.executable,
            "manage.py",
            "spectacular",
            "--fail-on-warn",
            "--validate",
            "--file",
            os.devnull,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "budmetrics_site.settings_test"},
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_openapi_lists_metric_enum_from_the_registry(client):
    from analytics.query.registry import METRICS

    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    text = response.content.decode()
    assert "/gateway/analytics" in text
    for name in METRICS:
        assert name in text


def test_docs_pages_render_with_local_assets(client):
    for url in ("/api/docs/", "/api/redoc/"):
        response = client.get(url)
        assert response.status_code == 200
        assert b"/static/drf_spectacular_sidecar/" in response.content
    bundle = re.search(
        rb'/static/drf_spectacular_sidecar/[^"]+\.js', client.get("/api/docs/").content
    )
    assert bundle is not None
    asset = client.get(bundle.group(0).decode())
    assert asset.status_code == 200  # served by WhiteNoise, no DEBUG, no collectstatic


def test_admin_login_page_renders(client):
    assert client.get("/admin/login/").status_code == 200


def test_prometheus_metrics_count_queries_and_cache_hits(superuser_client, client):
    body = {"start_time": "2024-01-01T00:00:00Z", "end_time": "2024-01-02T00:00:00Z"}
    superuser_client.post("/gateway/analytics", body, format="json")
    superuser_client.post("/gateway/analytics", body, format="json")
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    assert "gateway_analytics_query_duration_seconds_count" in text
    hits = re.search(r"^gateway_analytics_cache_hits_total (\S+)$", text, re.M)
    assert hits is not None
    assert float(hits.group(1)) >= 1
