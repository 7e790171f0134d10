"""The one place analytics code runs ClickHouse SELECTs.

Values travel as server-side bound parameters (``{name:Type}``), every query carries the
read-only/time/row limits, ClickHouse failures become API errors (503/504/422), and
``LOG_QUERIES`` logs each query with its parameters, duration and row count.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import structlog
from clickhouse_connect.driver import exceptions as ch_errors
from django.conf import settings
from django.db import connections
from django.db import utils as db_utils
from prometheus_client import Counter, Histogram

from budmetrics_site.errors import QueryTimeout, QueryTooLarge, ServiceUnavailable

logger = structlog.get_logger(__name__)

ALIAS = "clickhouse"

QUERY_DURATION = Histogram(
    "gateway_analytics_query_duration_seconds", "Time spent executing ClickHouse queries"
)
QUERY_ERRORS = Counter("gateway_analytics_query_errors_total", "ClickHouse query errors", ["kind"])

# ClickHouse error codes we translate for clients (see ErrorCodes.cpp upstream).
_TIMEOUT_CODES = {159, 160, 209, 210}  # TIMEOUT_EXCEEDED, TOO_SLOW, SOCKET_TIMEOUT, NETWORK_ERROR
_TOO_LARGE_CODES = {158, 241, 396, 307, 173}  # TOO_MANY_ROWS, MEMORY_LIMIT_EXCEEDED, ...
_CODE = re.compile(r"Code:\s*(\d+)")


@dataclass(frozen=True)
class QueryResult:
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    elapsed_ms: float
    rows_read: int = 0
    summary: dict[str, Any] = field(default_factory=dict)

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def read_settings(max_rows: int | None = None) -> dict[str, Any]:
    """The limits every analytics SELECT runs under."""
    limits: dict[str, Any] = {
        "readonly": 2,  # 2: reads only, but per-query settings (these) are still allowed
        "max_execution_time": settings.QUERY_TIMEOUT,
    }
    if max_rows is not None:
        limits["max_result_rows"] = max_rows
        limits["result_overflow_mode"] = "throw"
    return limits


def get_client() -> Any:
    """The clickhouse-connect client behind the Django alias, connecting if needed."""
    connection = connections[ALIAS]
    try:
        connection.ensure_connection()
    except (db_utils.Error, ch_errors.Error, OSError) as exc:
        QUERY_ERRORS.labels(kind="unavailable").inc()
        logger.warning("clickhouse_unavailable", error=str(exc).splitlines()[0][:300])
        raise ServiceUnavailable("ClickHouse is unavailable; try again shortly.") from exc
    return connection.connection.client


def error_code(exc: BaseException) -> int | None:
    match = _CODE.search(str(exc))
    return int(match.group(1)) if match else None


def translate_error(exc: BaseException) -> Exception:
    """Map a driver exception to the API error a client should see."""
    code = error_code(exc)
    if code in _TIMEOUT_CODES:
        QUERY_ERRORS.labels(kind="timeout").inc()
        return QueryTimeout()
    if code in _TOO_LARGE_CODES:
        QUERY_ERRORS.labels(kind="too_large").inc()
        return QueryTooLarge()
    if isinstance(exc, ch_errors.OperationalError | OSError) or code is None:
        QUERY_ERRORS.labels(kind="unavailable").inc()
        return ServiceUnavailable("ClickHouse is unavailable; try again shortly.")
    QUERY_ERRORS.labels(kind="query").inc()
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))


def run_select(
    sql: str,
    parameters: dict[str, Any] | None = None,
    *,
    max_rows: int | None = None,
    extra_settings: dict[str, Any] | None = None,
) -> QueryResult:
    """Run a SELECT built by a query builder. ``sql`` must come from a builder (registry
    identifiers only); user values go in ``parameters``."""
    client = get_client()
    query_settings = {**read_settings(max_rows), **(extra_settings or {})}
    started = time.perf_counter()
    try:
        with QUERY_DURATION.time():
            result = client.query(sql, parameters=parameters or {}, settings=query_settings)
    except ch_errors.Error as exc:
        translated = translate_error(exc)
        logger.warning(
            "clickhouse_query_failed",
            code=error_code(exc),
            error=str(exc).splitlines()[0][:500],
            sql=sql if settings.LOG_QUERIES else None,
        )
        if translated is exc:
            raise
        raise translated from exc
    elapsed_ms = (time.perf_counter() - started) * 1000
    summary = dict(result.summary or {})
    rows = [tuple(row) for row in result.result_rows]
    if settings.LOG_QUERIES:
        logger.info(
            "clickhouse_query",
            sql=sql,
            parameters=parameters,
            duration_ms=round(elapsed_ms, 2),
            rows=len(rows),
        )
    return QueryResult(
        columns=tuple(result.column_names),
        rows=rows,
        elapsed_ms=elapsed_ms,
        rows_read=int(summary.get("read_rows", 0) or 0),
        summary=summary,
    )
