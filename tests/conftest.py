"""Shared fixtures: real Postgres (DATABASE_URL), real Redis (REDIS_URL) and embedded
chDB in a throw-away directory (budmetrics_site.settings_test)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from django.db import connections

from analytics.models import GatewayAnalytics
from analytics.query.registry import ZERO_UUID

pytest_plugins = ["tests.access_fixtures"]

T = TypeVar("T")


_DEFAULTS: dict[str, Any] = {
    "model_name": "",
    "model_provider": "",
    "client_id": "",
    "user_id": "",
    "client_ip": "",
    "country_code": "",
    "region": "",
    "city": "",
    "latitude": 0.0,
    "longitude": 0.0,
    "user_agent": "",
    "device_type": "",
    "browser": "",
    "browser_version": "",
    "os": "",
    "os_version": "",
    "is_bot": False,
    "method": "POST",
    "path": "/v1/chat/completions",
    "status_code": 200,
    "response_time_ms": 100,
    "gateway_processing_ms": 5,
    "input_tokens": 0,
    "output_tokens": 0,
    "total_tokens": 0,
    "cost": 0.0,
    "request_size": 0,
    "response_size": 0,
    "is_blocked": False,
    "block_reason": "",
    "block_rule_id": ZERO_UUID,
    "error_type": "",
    # LLM columns: the "absent" values (what rows written before they existed read).
    "is_streaming": False,
    "ttft_ms": 0,
    "routing_decision": "",
    "attempts": 0,
    "finish_reason": "",
    "cached_input_tokens": 0,
    "model_version": "",
    "tags": {},
}

COLUMNS = [f.column for f in GatewayAnalytics._meta.local_fields]


def clickhouse_client() -> Any:
    connection = connections["clickhouse"]
    connection.ensure_connection()
    return connection.connection.client


def make_row(**values: Any) -> dict[str, Any]:
    """A complete gateway row: defaults, fresh ids, then the given values."""
    row = dict(_DEFAULTS)
    row.update(
        request_id=uuid.uuid4(),
        timestamp=datetime(2025, 1, 15, 12, 0, tzinfo=UTC),
        project_id=ZERO_UUID,
        model_id=ZERO_UUID,
        endpoint_id=ZERO_UUID,
    )
    row.update(values)
    row["tags"] = dict(row["tags"])  # never share the defaults' dict between rows
    unknown = set(row) - set(COLUMNS)
    if unknown:
        raise KeyError(f"not gateway_analytics columns: {sorted(unknown)}")
    return row


def insert_rows(rows: list[dict[str, Any]]) -> None:
    data = [[row[column] for column in COLUMNS] for row in rows]
    clickhouse_client().insert("gateway_analytics", data, column_names=COLUMNS)


@pytest.fixture
def clickhouse(django_db_blocker: Any) -> Iterator[Callable[[list[dict[str, Any]]], None]]:
    """Gives ``insert(rows)``; the table is emptied after the test."""
    with django_db_blocker.unblock():
        truncate_clickhouse()
        yield insert_rows
        truncate_clickhouse()


_truncations = 0  # how many times the tables were emptied in this process


def truncate_clickhouse() -> None:
    """Empty the raw table and every rollup (the views only ever add to rollups)."""
    from analytics.query.rollups import ROLLUPS

    global _truncations
    client = clickhouse_client()
    client.command("TRUNCATE TABLE gateway_analytics")
    for rollup in ROLLUPS.values():
        client.command(f"TRUNCATE TABLE {rollup.table}")
    _truncations += 1


@pytest.fixture(scope="module")
def module_rows(django_db_blocker: Any) -> Iterator[Callable[[Callable[[], T]], T]]:
    """Gives ``keep(write)`` for a module's read-only tests: ``write`` fills the emptied
    tables and its result is returned to every later caller while no test empties them
    (one using ``clickhouse`` does; the next caller then writes again), so a module writes
    its shared rows once, not once per test. The tables are emptied when the module ends."""
    kept: dict[str, Any] = {}

    def keep(write: Callable[[], T]) -> T:
        if kept.get("at") != _truncations:
            with django_db_blocker.unblock():
                truncate_clickhouse()
                kept["value"] = write()
            kept["at"] = _truncations
        return kept["value"]

    yield keep
    with django_db_blocker.unblock():
        truncate_clickhouse()


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    """Each test starts with no cached answers (only this run's keys: the prefix carries the
    process id, and delete_pattern honours it; FLUSHDB would hit parallel runs)."""
    from django.core.cache import cache

    delete_pattern = getattr(cache, "delete_pattern", None)
    if delete_pattern is not None:
        delete_pattern("*")
    else:
        cache.clear()
