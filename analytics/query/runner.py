"""The runner: executes printed queries only, under the limits every data query carries.

Values travel as server-side bound parameters; every query runs ``readonly`` with
``max_execution_time`` and, when asked, a result-row cap; driver failures become domain
errors (503/504/422 once ``budmetrics_site.errors`` maps them); ``LOG_QUERIES`` logs the
SQL (placeholders only), parameters, chosen storage, duration and row count.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import structlog
from clickhouse_connect.driver import exceptions as ch_errors
from django.conf import settings

from analytics.query.planner import plan
from analytics.query.printer import PrintedQuery, print_plan
from analytics.query.tree import BucketList, Select, UnscopedSystemQuery
from budmetrics_site.clickhouse.client import (
    QUERY_DURATION,
    error_code,
    get_client,
    read_settings,
    translate_error,
)

logger = structlog.get_logger(__name__)


@dataclass(frozen=True)
class QueryResult:
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    elapsed_ms: float
    rows_read: int = 0
    source: str = "raw"
    summary: dict[str, Any] = field(default_factory=dict)

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def run(printed: PrintedQuery, *, max_rows: int | None = None) -> QueryResult:
    """Run one printed query. A plain string is refused: SQL reaches ClickHouse only
    through the printer (identifiers whitelisted, values bound, tenant guard in place)."""
    if not isinstance(printed, PrintedQuery):
        raise TypeError("the runner takes a PrintedQuery from analytics.query.printer")
    client = get_client()
    started = time.perf_counter()
    try:
        with QUERY_DURATION.time():
            result = client.query(
                printed.sql, parameters=printed.params, settings=read_settings(max_rows)
            )
    except ch_errors.Error as exc:
        translated = translate_error(exc)
        logger.warning(
            "clickhouse_query_failed",
            code=error_code(exc),
            error=str(exc).splitlines()[0][:500],
            sql=printed.sql if settings.LOG_QUERIES else None,
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
            sql=printed.sql,
            parameters=printed.params,
            source=printed.source,
            duration_ms=round(elapsed_ms, 2),
            rows=len(rows),
        )
    return QueryResult(
        columns=tuple(result.column_names),
        rows=rows,
        elapsed_ms=elapsed_ms,
        rows_read=int(summary.get("read_rows", 0) or 0),
        source=printed.source,
        summary=summary,
    )


def execute(
    query: Select | BucketList | UnscopedSystemQuery, *, max_rows: int | None = None
) -> QueryResult:
    """Plan, print and run one query: the path every data query takes."""
    chosen = plan(query)
    if settings.LOG_QUERIES and chosen.storage is not None:
        logger.info(
            "query_plan",
            source=chosen.source,
            refused=dict(chosen.refused),
            rollup_range=[m.isoformat() for m in chosen.middle] if chosen.middle else None,
        )
    return run(print_plan(chosen), max_rows=max_rows)
