"""Backup ClickHouse and the circuit breaker (issue 12, item 2), on real connections.

The primary is a real refused port over HTTP (a TCP socket bound but never listening, so
nothing else can take the port while the test runs); the backup is this run's embedded
chDB with the test's rows, configured through ``CLICKHOUSE_BACKUP_EMBEDDED_PATH``. No
ClickHouse server exists on this machine, so "the primary comes back" is the primary's
connection target turning from the refused port to a real engine (the same embedded chDB):
the breaker's probe, reopen and close are checked on those real connections; the only
thing stood in for is the server's restart itself. The breaker's clock travels instead of
the test sleeping.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver import create_client
from clickhouse_connect.driver import exceptions as ch_errors
from django.conf import settings as django_settings
from django.db import connections
from django.test import override_settings
from prometheus_client import REGISTRY

from analytics.query.runner import execute
from analytics.query.scope import ProjectScope
from analytics.query.tree import Rows, Select
from budmetrics_site.clickhouse import failover
from budmetrics_site.exceptions import ServiceUnavailableError, TooManyResultRowsError
from tests import analytics_oracle as oracle
from tests.conftest import clickhouse_client, make_row

pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

P1 = oracle.PROJECTS[0]
T0 = datetime(2024, 1, 1, 3, tzinfo=UTC)
WINDOW = "start_time=2024-01-01T00:00:00Z&end_time=2024-01-02T00:00:00Z"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A local port that refuses connections: bound (so it stays ours), never listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def http_client(port: int) -> Any:
    """A real clickhouse-connect HTTP client: connecting to a refused port raises."""
    database = connections["clickhouse"].settings_dict["NAME"]
    return create_client(host="127.0.0.1", port=port, database=database, connect_timeout=2)


class Primary:
    """The primary's connection target: the refused port until ``come_back()``, then the
    real embedded engine. Counts connection attempts (the breaker's probes)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.up = False
        self.attempts = 0

    def come_back(self) -> None:
        self.up = True

    def __call__(self) -> Any:
        self.attempts += 1
        return clickhouse_client() if self.up else http_client(self.port)


@pytest.fixture
def backup_route(refused_port: int) -> Iterator[tuple[failover.Route, Primary]]:
    """Queries go to a refused primary with this run's chDB as the configured backup."""
    with override_settings(
        CLICKHOUSE_BACKUP_EMBEDDED_PATH=django_settings.CLICKHOUSE_EMBEDDED_PATH,
        CLICKHOUSE_FAILOVER_COOLDOWN_SECONDS=30,
    ):
        configured = failover.route_from_settings()
        assert configured.backup is not None
        primary = Primary(refused_port)
        route = failover.Route(
            primary=primary, backup=configured.backup, breaker=configured.breaker
        )
        with failover.using(route):
            yield route, primary


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(failover, "clock", lambda: now[0])
    return now


@pytest.fixture
def rows(clickhouse: Any) -> None:
    clickhouse([make_row(timestamp=T0, project_id=P1, method="GET") for _ in range(3)])


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def rows_of_p1() -> Rows:
    return Rows(
        scope=ProjectScope.only([P1]), start=T0.replace(hour=0), end=T0.replace(day=2, hour=0)
    )


def count_query() -> Select:
    return Select(columns=(("count()", "n"),), source=rows_of_p1())


def test_a_refused_primary_fails_over_to_the_backup_and_says_so(
    backup_route: Any, rows: None, api_client_factory: Any
) -> None:
    route, primary = backup_route
    api = api_client_factory([P1])
    url = f"/gateway/top-routes?{WINDOW}&project_ids={P1}"
    before = metric("gateway_analytics_clickhouse_failovers_total", reason="connect_failed")

    first = api.get(url)
    assert first.status_code == 200, first.content
    body = first.json()
    assert body["meta"] == {"served_by": "backup"}
    assert sum(r["request_count"] for r in body["data"]["routes"]) == 3  # the backup's rows
    assert route.breaker.state == failover.OPEN
    assert primary.attempts == 1
    assert metric("gateway_analytics_clickhouse_failovers_total", reason="connect_failed") == (
        before + 1
    )
    assert metric("gateway_analytics_clickhouse_breaker_state") == 1

    # A backup answer is never cached; with the breaker open the primary is not tried.
    second = api.get(url)
    assert second.status_code == 200
    assert second["X-Cache"] == "MISS"
    assert second.json()["meta"] == {"served_by": "backup"}
    assert primary.attempts == 1


def test_analytics_answered_by_the_backup_equals_the_primarys_answer(
    rows: None, api_client_factory: Any, refused_port: int
) -> None:
    api = api_client_factory([P1])
    body = {
        "project_ids": [str(P1)],
        "start_time": "2024-01-01T00:00:00Z",
        "end_time": "2024-01-02T00:00:00Z",
        "time_bucket": "6h",
        "metrics": ["total_requests"],
    }
    from_primary = api.post("/gateway/analytics", body, format="json").json()
    assert from_primary["meta"] == {"served_by": "primary"}
    with override_settings(
        CLICKHOUSE_BACKUP_EMBEDDED_PATH=django_settings.CLICKHOUSE_EMBEDDED_PATH,
        CACHE_ENABLED=False,
    ):
        configured = failover.route_from_settings()
        route = failover.Route(
            lambda: http_client(refused_port), configured.backup, configured.breaker
        )
        with failover.using(route):
            from_backup = api.post("/gateway/analytics", body, format="json").json()
    assert from_backup["meta"] == {"served_by": "backup"}
    assert from_backup["data"]["time_series"] == from_primary["data"]["time_series"]
    assert from_backup["data"]["summary"] == from_primary["data"]["summary"]


def test_the_breaker_probes_after_its_cooldown_and_closes_when_the_primary_is_back(
    backup_route: Any, rows: None, clock: list[float]
) -> None:
    route, primary = backup_route
    query = count_query()

    assert execute(query).rows == [(3,)]  # refused → backup, breaker opens
    assert (route.breaker.state, primary.attempts) == (failover.OPEN, 1)
    clock[0] += 29
    execute(query)  # still open: the primary is not tried
    assert primary.attempts == 1

    clock[0] += 1  # cooldown over: this query probes (half-open), the primary still refuses
    assert execute(query).rows == [(3,)]
    assert (route.breaker.state, primary.attempts) == (failover.OPEN, 2)
    clock[0] += 10
    execute(query)  # reopened for a whole new cooldown
    assert primary.attempts == 2

    primary.come_back()
    clock[0] += 30
    with failover_trace() as trace:
        assert execute(query).rows == [(3,)]
    assert trace.served_by == ["primary"]
    assert (route.breaker.state, primary.attempts) == (failover.CLOSED, 3)
    assert metric("gateway_analytics_clickhouse_breaker_state") == 0


def failover_trace() -> Any:
    from analytics.query.trace import tracing

    return tracing()


def test_errors_that_are_the_querys_fault_never_fail_over(backup_route: Any, rows: None) -> None:
    route, primary = backup_route
    primary.come_back()
    before = sum(
        metric("gateway_analytics_clickhouse_failovers_total", reason=r)
        for r in ("connect_failed", "breaker_open")
    )
    many = Select(columns=(("request_id", "id"),), source=rows_of_p1())
    with pytest.raises(TooManyResultRowsError):
        execute(many, max_rows=1)  # the row cap: the primary answered with an error
    assert route.breaker.state == failover.CLOSED
    after = sum(
        metric("gateway_analytics_clickhouse_failovers_total", reason=r)
        for r in ("connect_failed", "breaker_open")
    )
    assert after == before


def test_only_failures_to_reach_the_server_count_as_unreachable(refused_port: int) -> None:
    with pytest.raises(ch_errors.OperationalError) as refused:
        http_client(refused_port)
    assert failover.is_connect_failure(refused.value)
    with pytest.raises(ch_errors.OperationalError) as unknown_host:
        create_client(host="no-such-host.invalid", port=8123, connect_timeout=2)
    assert failover.is_connect_failure(unknown_host.value)
    with pytest.raises(ch_errors.DatabaseError) as bad_sql:
        clickhouse_client().query("SELECT no_such_column FROM system.one")
    assert not failover.is_connect_failure(bad_sql.value)


def test_without_a_backup_a_refused_primary_is_503(refused_port: int, clock: list[float]) -> None:
    route = failover.Route(lambda: http_client(refused_port), None, failover.Breaker(30))
    with failover.using(route), pytest.raises(ServiceUnavailableError):
        execute(count_query())


def test_primary_and_backup_both_refused_is_503(refused_port: int) -> None:
    route = failover.Route(
        lambda: http_client(refused_port),
        lambda: http_client(refused_port),
        failover.Breaker(30),
    )
    with failover.using(route), pytest.raises(ServiceUnavailableError, match="primary and backup"):
        execute(count_query())


def test_readyz_is_degraded_on_the_backup_and_503_without_any(
    client: Any, backup_route: Any, refused_port: int
) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["status"] == "degraded"
    assert data["checks"]["clickhouse"]["status"] == "degraded"
    assert "Connection refused" in data["checks"]["clickhouse"]["detail"]

    nothing = failover.Route(
        lambda: http_client(refused_port),
        lambda: http_client(refused_port),
        failover.Breaker(30),
    )
    with failover.using(nothing):
        down = client.get("/readyz")
    assert down.status_code == 503
    assert "clickhouse" in down.json()["error"]["message"]


def test_backup_settings_build_a_server_client_config(refused_port: int) -> None:
    with override_settings(CLICKHOUSE_BACKUP_HOST="127.0.0.1", CLICKHOUSE_BACKUP_PORT=refused_port):
        arguments = failover.backup_settings()
        assert arguments is not None
        assert (arguments["host"], arguments["port"]) == ("127.0.0.1", refused_port)
        assert failover.route().backup is not None
    assert failover.route().backup is None  # the test settings configure none


def test_an_embedded_backup_needs_a_server_primary() -> None:
    env = {
        **os.environ,
        "CLICKHOUSE_HOST": "",
        "CLICKHOUSE_BACKUP_EMBEDDED_PATH": "/tmp/budmetrics-backup",  # noqa: S108
    }
    result = subprocess.run(
        [sys.executable, "-c", "import budmetrics_site.settings"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "CLICKHOUSE_BACKUP_EMBEDDED_PATH" in result.stderr
    assert "CLICKHOUSE_HOST" in result.stderr


def test_while_one_caller_probes_the_others_stay_on_the_backup(clock: list[float]) -> None:
    breaker = failover.Breaker(cooldown=30)
    breaker.failed()
    assert not breaker.allow_primary()
    clock[0] += 30
    assert breaker.allow_primary()  # the probe
    assert breaker.state == failover.HALF_OPEN
    assert not breaker.allow_primary()  # everyone else, until the probe reports
    breaker.succeeded()
    assert breaker.allow_primary()


def test_a_probe_that_never_reports_is_replaced_after_a_cooldown(clock: list[float]) -> None:
    breaker = failover.Breaker(cooldown=30)
    breaker.failed()
    clock[0] += 30
    assert breaker.allow_primary()  # a probe whose caller then dies without reporting
    clock[0] += 29
    assert not breaker.allow_primary()
    clock[0] += 1
    assert breaker.allow_primary()
