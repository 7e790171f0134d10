"""The runner: executes printed queries only, under the limits every data query carries.

Values travel as server-side bound parameters; every query runs ``readonly`` with
``max_execution_time`` and, when asked, a result-row cap; driver failures become domain
errors (503/504/422 once ``budmetrics_site.errors`` maps them); ``LOG_QUERIES`` logs the
SQL (placeholders only), parameter names (values only with ``LOG_QUERY_VALUES``), chosen
storage, the server that answered, duration and row count.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NoReturn

import structlog
from clickhouse_connect.driver import exceptions as ch_errors
from django.conf import settings

from analytics.query import trace
from analytics.query.planner import Plan, plan
from analytics.query.printer import PrintedQuery, explain, print_plan
from analytics.query.tree import BucketList, Select, UnscopedSystemQuery
from budmetrics_site.clickhouse import failover
from budmetrics_site.clickhouse.client import (
    QUERY_DURATION,
    error_code,
    read_settings,
    translate_error,
)

logger = structlog.get_logger(__name__)

REDACTED = "<redacted>"


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


def run(
    printed: PrintedQuery, *, max_rows: int | None = None, chosen: Plan | None = None
) -> QueryResult:
    """Run one printed query. A plain string is refused: SQL reaches ClickHouse only
    through the printer (identifiers whitelisted, values bound, tenant guard in place).
    It runs on the primary ClickHouse, or on the backup when the primary cannot be reached
    (``budmetrics_site.clickhouse.failover``); an open trace records which, and in debug
    the plan and profile (``chosen``: the plan, for its storage and refusals)."""
    if not isinstance(printed, PrintedQuery):
        raise TypeError("the runner takes a PrintedQuery from analytics.query.printer")
    active = trace.current()
    debug = active is not None and active.debug
    timing: dict[str, Any] = {}

    def on(client: Any) -> tuple[Any, list[str] | None]:
        started = time.perf_counter()
        result = client.query(
            printed.sql, parameters=printed.params, settings=read_settings(max_rows)
        )
        timing["elapsed_ms"] = (time.perf_counter() - started) * 1000
        timing["embedded"] = str(getattr(client, "uri", "")).startswith("chdb")
        return result, (_plan_lines(client, printed) if debug else None)

    try:
        with QUERY_DURATION.time():
            (result, plan_lines), served_by = failover.call(on)
    except ch_errors.Error as exc:
        _raise_translated(
            exc,
            "clickhouse_query_failed",
            error=str(exc).splitlines()[0][:500],
            sql=printed.sql if settings.LOG_QUERIES else None,
        )
    elapsed_ms = timing["elapsed_ms"]
    summary = dict(result.summary or {})
    rows = [tuple(row) for row in result.result_rows]
    if settings.LOG_QUERIES:
        logger.info(
            "clickhouse_query",
            sql=printed.sql,
            parameters=logged_parameters(printed.params),
            source=printed.source,
            served_by=served_by,
            duration_ms=round(elapsed_ms, 2),
            rows=len(rows),
        )
    if active is not None:
        active.served_by.append(served_by)
        if chosen is not None and chosen.storage is not None:
            active.sources.append(chosen.source)
            active.approximate.update(sketched_metrics(chosen))
        if debug:
            active.statements.append(
                {
                    "sql": printed.sql,
                    "served_by": served_by,
                    "storage": printed.source,
                    "refused": dict(chosen.refused) if chosen else {},
                    "plan": plan_lines,
                    "profile": trace.profile_of(summary, elapsed_ms, embedded=timing["embedded"]),
                }
            )
    return QueryResult(
        columns=tuple(result.column_names),
        rows=rows,
        elapsed_ms=elapsed_ms,
        rows_read=int(summary.get("read_rows", 0) or 0),
        source=printed.source,
        summary=summary,
    )


def _raise_translated(exc: ch_errors.Error, event: str, **fields: Any) -> NoReturn:
    """Log a driver failure and raise it as the domain error it maps to (503/504/422 once
    ``budmetrics_site.errors`` maps them), or as itself when it maps to none."""
    translated = translate_error(exc)
    logger.warning(event, code=error_code(exc), **fields)
    if translated is exc:
        raise exc
    raise translated from exc


def logged_parameters(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as ``LOG_QUERIES`` logs them: names only, values redacted, unless
    ``LOG_QUERY_VALUES`` (values are tenants' data: user ids, IPs, search text)."""
    if settings.LOG_QUERY_VALUES:
        return params
    return dict.fromkeys(params, REDACTED)


def _plan_lines(client: Any, printed: PrintedQuery) -> list[str]:
    """``EXPLAIN indexes = 1`` of the statement on the server that ran it; a plan that
    cannot be had is said so in the output, never an error of the answer."""
    plan_query = explain(printed)
    try:
        result = client.query(
            plan_query.sql, parameters=plan_query.params, settings=read_settings()
        )
    except ch_errors.Error as exc:
        return [f"EXPLAIN failed: {str(exc).splitlines()[0][:300]}"]
    return [str(row[0]) for row in result.result_rows]


def sketched_metrics(chosen: Plan) -> dict[str, str]:
    """The metrics of a plan that a rollup answers from a sketch, with their bound."""
    rollup = chosen.storage.rollup if chosen.storage else None
    query = chosen.query
    if rollup is None or not isinstance(query, Select | UnscopedSystemQuery):
        return {}
    select = query.select if isinstance(query, UnscopedSystemQuery) else query
    bounds = rollup.approximate
    used = select.rows_select.metric_columns.values()
    return {metric: bounds[metric] for metric in used if metric in bounds}


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
            tiers=[tier.name for tier, _, _ in chosen.tiers],
        )
    return run(print_plan(chosen), max_rows=max_rows, chosen=chosen)


class BlockStream:
    """An open streamed result: ``columns``, then blocks of row tuples as ClickHouse sends
    them (clickhouse-connect's block streaming, on a server over HTTP and on embedded
    chDB alike). Close it (or use it as a context manager) to end the query early; on
    chDB an open stream holds the client's handle, so it must be consumed or closed."""

    def __init__(self, printed: PrintedQuery, context: Any, blocks: Any, served_by: str) -> None:
        self.printed = printed
        self._context = context
        self._blocks = blocks
        self.served_by = served_by
        self.columns: tuple[str, ...] = tuple(context.source.column_names)
        self.rows = 0
        self._closed = False

    def __iter__(self) -> Iterator[list[tuple[Any, ...]]]:
        try:
            for block in self._blocks:
                self.rows += len(block)
                yield block
        except ch_errors.Error as exc:
            _raise_translated(exc, "clickhouse_stream_failed")
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
                parameters=logged_parameters(self.printed.params),
                source=self.printed.source,
                served_by=self.served_by,
                rows=self.rows,
            )

    def __enter__(self) -> BlockStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Read formats a stream may ask for: clickhouse-connect decodes these types as text
# (an export writes UUIDs as text anyway; decoding them to ``uuid.UUID`` first is waste).
TEXT_FORMATS = {"UUID": "string"}
# Rows per block of a stream: the rows of one block are Python objects all at once (about
# 1 KiB a row for a dozen columns), and the engine otherwise sends a whole sorted export
# slice (50,000 rows) as one block; bench/export_stream.py measures the RSS it saves.
STREAM_BLOCK_ROWS = 10_000


def stream(printed: PrintedQuery, *, text_uuids: bool = False) -> BlockStream:
    """Start a printed query as a block stream (exports: constant memory whatever the row
    count). The same rule as ``run``: only a ``PrintedQuery``, under the read limits; the
    row cap belongs in the query's own LIMIT. ``text_uuids``: UUIDs arrive as text."""
    if not isinstance(printed, PrintedQuery):
        raise TypeError("the runner takes a PrintedQuery from analytics.query.printer")

    def open_on(client: Any) -> tuple[Any, Any]:
        # The query is sent when the context is entered: a primary that cannot be reached
        # fails here, so the stream fails over like ``run`` does.
        context = client.query_row_block_stream(
            printed.sql,
            parameters=printed.params,
            settings={**read_settings(), "max_block_size": STREAM_BLOCK_ROWS},
            query_formats=dict(TEXT_FORMATS) if text_uuids else None,
        )
        return context, context.__enter__()

    try:
        (context, blocks), served_by = failover.call(open_on)
        return BlockStream(printed, context, blocks, served_by)
    except ch_errors.Error as exc:
        _raise_translated(exc, "clickhouse_query_failed")


def execute_stream(query: Select | UnscopedSystemQuery, *, text_uuids: bool = False) -> BlockStream:
    """Plan, print and stream one query (see ``stream``)."""
    return stream(print_plan(plan(query)), text_uuids=text_uuids)
