"""The ClickHouse connection behind the Django alias, and what its failures mean.

Queries are run by ``analytics.query.runner``, which takes only printed queries; this
module gives it the client and turns driver exceptions into domain errors
(``budmetrics_site.exceptions``), which ``budmetrics_site.errors`` maps to 503/504/422.
"""

from __future__ import annotations

import re
from typing import Any

import structlog
from clickhouse_connect.driver import exceptions as ch_errors
from django.conf import settings
from django.db import connections
from django.db import utils as db_utils
from prometheus_client import Counter, Histogram

from budmetrics_site.exceptions import (
    QueryTimeoutError,
    QueryTooLargeError,
    ServiceUnavailableError,
    TooManyResultRowsError,
)

logger = structlog.get_logger(__name__)

ALIAS = "clickhouse"

QUERY_DURATION = Histogram(
    "gateway_analytics_query_duration_seconds", "Time spent executing ClickHouse queries"
)
QUERY_ERRORS = Counter("gateway_analytics_query_errors_total", "ClickHouse query errors", ["kind"])

# ClickHouse error codes we translate for clients (see ErrorCodes.cpp upstream).
_TIMEOUT_CODES = {159, 160, 209, 210}  # TIMEOUT_EXCEEDED, TOO_SLOW, SOCKET_TIMEOUT, NETWORK_ERROR
_TOO_MANY_ROWS_CODES = {158, 396}  # TOO_MANY_ROWS, TOO_MANY_ROWS_OR_BYTES (the row cap)
_TOO_LARGE_CODES = {241, 307, 173}  # MEMORY_LIMIT_EXCEEDED, TOO_MANY_BYTES, CANNOT_ALLOCATE
_CODE = re.compile(r"Code:\s*(\d+)")


def read_settings(max_rows: int | None = None) -> dict[str, Any]:
    """The limits every data SELECT runs under (the runner's, and the benchmarks' direct
    SQL baseline)."""
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
        raise ServiceUnavailableError("ClickHouse is unavailable; try again shortly.") from exc
    return connection.connection.client


def error_code(exc: BaseException) -> int | None:
    match = _CODE.search(str(exc))
    return int(match.group(1)) if match else None


def translate_error(exc: BaseException) -> Exception:
    """Map a driver exception to the API error a client should see."""
    code = error_code(exc)
    if code in _TIMEOUT_CODES:
        QUERY_ERRORS.labels(kind="timeout").inc()
        return QueryTimeoutError()
    if code in _TOO_MANY_ROWS_CODES:
        QUERY_ERRORS.labels(kind="too_large").inc()
        return TooManyResultRowsError()
    if code in _TOO_LARGE_CODES:
        QUERY_ERRORS.labels(kind="too_large").inc()
        return QueryTooLargeError()
    if isinstance(exc, ch_errors.OperationalError | OSError) or code is None:
        QUERY_ERRORS.labels(kind="unavailable").inc()
        return ServiceUnavailableError("ClickHouse is unavailable; try again shortly.")
    QUERY_ERRORS.labels(kind="query").inc()
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))
