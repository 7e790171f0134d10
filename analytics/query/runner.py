"""The runner: executes printed queries only, under the limits every data query carries.

Values travel as server-side bound parameters; every query runs ``readonly`` with
``max_execution_time`` and, when asked, a result-row cap; driver failures become domain
errors (503/504/422 once ``budmetrics_site.errors`` maps them); ``LOG_QUERIES`` logs the
SQL (placeholders only), parameters, chosen storage, duration and row count.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
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
    if settings.LOG_QUERIES and chosen.refused:
        logger.info("query_plan", source=chosen.source, refused=dict(chosen.refused))
    return run(print_plan(chosen), max_rows=max_rows)


class BlockStream:
    """An open streamed result: ``columns``, then blocks of row tuples as ClickHouse sends
    them (clickhouse-connect's block streaming, on a server over HTTP and on embedded
    chDB alike). Close it (or use it as a context manager) to end the query early; on
    chDB an open stream holds the client's handle, so it must be consumed or closed."""

    def __init__(self, printed: PrintedQuery, context: Any) -> None:
        self.printed = printed
        self._context = context
        self._blocks = context.__enter__()
        self.columns: tuple[str, ...] = tuple(context.source.column_names)
        self.rows = 0
        self._closed = False

    def __iter__(self) -> Iterator[list[tuple[Any, ...]]]:
        try:
            for block in self._blocks:
                self.rows += len(block)
                yield block
        except ch_errors.Error as exc:
            translated = translate_error(exc)
            logger.warning("clickhouse_stream_failed", code=error_code(exc))
            if translated is exc:
                raise
            raise translated from exc
        finally:
            self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._context.__exit__(None, None, None)
        if settings.LOG_QUERIES:
            logger.info(
                "clickhouse_stream",
                sql=self.printed.sql,
                parameters=self.printed.params,
                source=self.printed.source,
                rows=self.rows,
            )

    def __enter__(self) -> BlockStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Read formats a stream may ask for: clickhouse-connect decodes these types as text
# (an export writes UUIDs as text anyway; decoding them to ``uuid.UUID`` first is waste).
TEXT_FORMATS = {"UUID": "string"}


def stream(printed: PrintedQuery, *, text_uuids: bool = False) -> BlockStream:
    """Start a printed query as a block stream (exports: constant memory whatever the row
    count). The same rule as ``run``: only a ``PrintedQuery``, under the read limits; the
    row cap belongs in the query's own LIMIT. ``text_uuids``: UUIDs arrive as text."""
    if not isinstance(printed, PrintedQuery):
        raise TypeError("the runner takes a PrintedQuery from analytics.query.printer")
    client = get_client()
    try:
        context = client.query_row_block_stream(
            printed.sql,
            parameters=printed.params,
            settings=read_settings(),
            query_formats=dict(TEXT_FORMATS) if text_uuids else None,
        )
        return BlockStream(printed, context)
    except ch_errors.Error as exc:
        translated = translate_error(exc)
        logger.warning("clickhouse_query_failed", code=error_code(exc))
        if translated is exc:
            raise
        raise translated from exc


def execute_stream(query: Select | UnscopedSystemQuery, *, text_uuids: bool = False) -> BlockStream:
    """Plan, print and stream one query (see ``stream``)."""
    return stream(print_plan(plan(query)), text_uuids=text_uuids)
