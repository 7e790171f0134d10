"""SQL for the request log: the caller's ``Rows`` with the analytics filters, a whitelisted
column list, ordered by the sort key ``(timestamp, request_id)`` and cut by a keyset
condition after the cursor's position. Every value is bound; the printer adds the tenant
guard; the planner always answers from the raw table (these are rows, not aggregates).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings

from analytics.access.privacy import present_ip
from analytics.query.buckets import bucket_sql, format_time
from analytics.query.runner import BlockStream, execute, execute_stream
from analytics.query.scope import ProjectScope
from analytics.query.tree import Condition, Filter, Rows, Select

# The whitelist: every stored column of ``gateway_analytics``, in table order (a test holds
# it equal to the model's columns). Identifiers in a request-log query come only from here.
FIELDS: tuple[str, ...] = (
    "request_id", "timestamp", "project_id", "model_id", "endpoint_id", "model_name",
    "model_provider", "client_id", "user_id", "client_ip", "country_code", "region", "city",
    "latitude", "longitude", "user_agent", "device_type", "browser", "browser_version", "os",
    "os_version", "is_bot", "method", "path", "status_code", "response_time_ms",
    "gateway_processing_ms", "input_tokens", "output_tokens", "total_tokens", "cost",
    "request_size", "response_size", "is_blocked", "block_reason", "block_rule_id",
    "error_type", "is_streaming", "ttft_ms", "routing_decision", "attempts", "finish_reason",
    "cached_input_tokens", "model_version", "tags",
)  # fmt: skip
SORT_KEY = ("timestamp", "request_id")
ORDERS = ("newest", "oldest")
IP_FIELDS = frozenset({"client_ip"})


@dataclass(frozen=True)
class Position:
    """A place in the sort order: the last row a page returned."""

    timestamp: datetime
    request_id: uuid.UUID


@dataclass(frozen=True)
class Drill:
    """One analytics bucket: rows whose bucket (same expression, zone and width as the
    series) starts at ``start``."""

    bucket: str
    timezone: str
    start: datetime


@dataclass(frozen=True)
class RequestLogQuery:
    scope: ProjectScope
    start: datetime
    end: datetime
    fields: tuple[str, ...] = FIELDS
    order: str = "newest"
    model_ids: tuple[uuid.UUID, ...] = ()
    endpoint_ids: tuple[uuid.UUID, ...] = ()
    filters: Filter | None = None
    after: Position | None = None
    drill: Drill | None = None

    def rows(self) -> Rows:
        conditions: list[Condition] = []
        if self.drill is not None:
            conditions.append(
                Condition.of(
                    f"{bucket_sql(self.drill.bucket)} = {{drill_bucket:DateTime64(3, 'UTC')}}",
                    tz=self.drill.timezone,
                    drill_bucket=self.drill.start,
                )
            )
        if self.after is not None:
            # The timestamp bound alone lets the primary key skip granules; the tuple
            # comparison is the exact keyset cut (ties on timestamp broken by request_id).
            op, bound = ("<", "<=") if self.order == "newest" else (">", ">=")
            conditions.append(
                Condition.of(
                    f"timestamp {bound} {{after_ts:DateTime64(3, 'UTC')}} AND "
                    f"(timestamp, request_id) {op} "
                    "({after_ts:DateTime64(3, 'UTC')}, {after_id:UUID})",
                    after_ts=self.after.timestamp,
                    after_id=self.after.request_id,
                )
            )
        return Rows(
            scope=self.scope,
            start=self.start,
            end=self.end,
            model_ids=tuple(self.model_ids),
            endpoint_ids=tuple(self.endpoint_ids),
            filters=self.filters,
            conditions=tuple(conditions),
        )


def request_log_query(data: dict[str, Any], scope: ProjectScope) -> RequestLogQuery:
    """The query of validated ``RequestLogQuerySerializer`` data for a caller's scope."""
    return RequestLogQuery(
        scope=scope,
        start=data["start_time"],
        end=data["end_time"],
        fields=tuple(data["fields"]),
        order=data["order"],
        model_ids=tuple(data["model_ids"]),
        endpoint_ids=tuple(data["endpoint_ids"]),
        filters=data["filters"],
        after=data["after"],
        drill=data["drill"],
    )


def columns_for(fields: Sequence[str]) -> tuple[str, ...]:
    """The columns read: the asked fields plus the sort key (the cursor needs it)."""
    return tuple(dict.fromkeys([*fields, *SORT_KEY]))


def log_select(query: RequestLogQuery, limit: int) -> Select:
    direction = "DESC" if query.order == "newest" else "ASC"
    for name in query.fields:
        if name not in FIELDS:  # validated before; identifiers only from the whitelist
            raise ValueError(f"not a request-log field: {name!r}")
    return Select(
        columns=tuple((name, "") for name in columns_for(query.fields)),
        source=query.rows(),
        order_by=tuple(f"{key} {direction}" for key in SORT_KEY),
        limit=limit,
    )


def present(value: Any, name: str) -> Any:
    """A stored value as JSON data: times in ISO 8601 UTC, UUIDs as text, IPs through
    ``ANONYMIZE_IPS``; everything else as stored (``tags`` an object)."""
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if name in IP_FIELDS:
        return present_ip(value) or ""
    return value


UUID_FIELDS = frozenset({"request_id", "project_id", "model_id", "endpoint_id", "block_rule_id"})


def _uuid_text(value: Any) -> Any:
    return str(value) if value is not None else None


def _ip(value: Any) -> Any:
    return present_ip(value) or ""


def fast_time(value: datetime) -> str:
    """``format_time`` for the UTC datetimes the engine returns, without the zone
    conversion (an export formats millions)."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else format_time(value)


def converters(fields: Sequence[str]) -> list[Any]:
    """``present`` per column, chosen once per query instead of once per value (exports
    convert millions of values); None where the stored value is shown as it is."""
    chosen: list[Any] = []
    for name in fields:
        if name == "timestamp":
            chosen.append(fast_time)
        elif name in UUID_FIELDS:
            chosen.append(_uuid_text)
        elif name in IP_FIELDS:
            chosen.append(_ip)
        else:
            chosen.append(None)
    return chosen


def iter_values(
    stream: Iterable[list[tuple[Any, ...]]], fields: Sequence[str]
) -> Iterator[list[Any]]:
    """The streamed rows as lists of presented values in ``fields`` order."""
    # The SELECT lists columns_for(fields): the fields first, in order, then any sort-key
    # column they lack. Only the columns that need it are converted.
    # Streams read UUIDs as text, and IPs stay as stored unless ANONYMIZE_IPS.
    width = len(fields)
    skip = {_uuid_text} if settings.ANONYMIZE_IPS else {_uuid_text, _ip}
    convert = [(i, fn) for i, fn in enumerate(converters(fields)) if fn not in (None, *skip)]
    for block in stream:
        for row in block:
            values = list(row[:width])
            for i, fn in convert:
                values[i] = fn(values[i])
            yield values


def row_dict(columns: Sequence[str], row: Sequence[Any], fields: Sequence[str]) -> dict[str, Any]:
    values = dict(zip(columns, row, strict=True))
    return {name: present(values[name], name) for name in fields}


def position_of(columns: Sequence[str], row: Sequence[Any]) -> Position:
    values = dict(zip(columns, row, strict=True))
    return Position(values["timestamp"], values["request_id"])


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    last: Position | None  # set when another page follows
    elapsed_ms: float


def request_page(query: RequestLogQuery, limit: int) -> Page:
    """One page: ``limit`` rows after the cursor, plus one to know whether more follow."""
    result = execute(log_select(query, limit + 1))
    raw = result.rows
    more = len(raw) > limit
    raw = raw[:limit]
    rows = [row_dict(result.columns, row, query.fields) for row in raw]
    last = position_of(result.columns, raw[-1]) if more and raw else None
    return Page(rows=rows, last=last, elapsed_ms=round(result.elapsed_ms, 2))


def request_by_id(scope: ProjectScope, request_id: uuid.UUID) -> dict[str, Any] | None:
    """One row by id within the caller's scope (None outside it). The range is the whole
    retention: ids are random, so no time bound narrows the search."""
    rows = Rows(
        scope=scope,
        start=datetime(1970, 1, 1, tzinfo=UTC),
        end=datetime(2200, 1, 1, tzinfo=UTC),
        conditions=(Condition.of("request_id = {request_id:UUID}", request_id=request_id),),
    )
    result = execute(Select(columns=tuple((n, "") for n in FIELDS), source=rows, limit=1))
    if not result.rows:
        return None
    return row_dict(result.columns, result.rows[0], FIELDS)


# Rows per slice of a streamed export: the engine sorts one slice at a time, so this bounds
# its memory, whatever the export's size (bench/export_stream.py measures it).
SLICE_ROWS = 50_000
_MINUTE = timedelta(minutes=1)


def minute_counts(query: RequestLogQuery) -> list[tuple[datetime, int]]:
    """Rows per minute matching the query (every filter, cursor and drill-down applied),
    in the query's order: one cheap aggregation that plans the export's slices."""
    direction = "DESC" if query.order == "newest" else "ASC"
    result = execute(
        Select(
            columns=(("toStartOfMinute(timestamp)", "minute"), ("count()", "rows")),
            source=query.rows(),
            group_by=("minute",),
            order_by=(f"minute {direction}",),
        )
    )
    return [(minute, int(rows)) for minute, rows in result.rows]


def export_slices(
    query: RequestLogQuery, cap: int, slice_rows: int
) -> tuple[list[tuple[datetime, datetime]], int]:
    """Consecutive time ranges, in the export's order, of at most ``slice_rows`` rows
    each (or one minute, if a minute holds more), covering the first ``cap + 1`` rows;
    and how many rows match in all. Rows of one timestamp share a minute, so a slice never
    splits a tie."""
    slices: list[tuple[datetime, datetime]] = []
    total = 0
    current: list[datetime] = []
    current_rows = 0
    for minute, rows in minute_counts(query):
        if total <= cap:
            if current and current_rows + rows > slice_rows:
                slices.append((min(current), max(current) + _MINUTE))
                current, current_rows = [], 0
            current.append(minute)
            current_rows += rows
        total += rows
    if current:
        slices.append((min(current), max(current) + _MINUTE))
    return slices, total


class SlicedStream:
    """The export's rows as one stream of blocks, read one time slice after another (one
    ClickHouse stream open at a time), each slice sorted by the engine: the same rows in
    the same order as one ``ORDER BY … LIMIT`` query, in bounded memory."""

    def __init__(self, query: RequestLogQuery, cap: int, slice_rows: int | None = None) -> None:
        self.query = query
        self.cap = cap
        self.slices, self.total = export_slices(query, cap, slice_rows or SLICE_ROWS)
        self._current: BlockStream | None = None
        self._closed = False

    def __iter__(self) -> Iterator[list[tuple[Any, ...]]]:
        remaining = self.cap + 1  # one more tells the cap was reached
        try:
            for start, end in self.slices:
                if remaining <= 0 or self._closed:
                    break
                part = replace(
                    self.query, start=max(start, self.query.start), end=min(end, self.query.end)
                )
                self._current = execute_stream(log_select(part, remaining), text_uuids=True)
                for block in self._current:
                    remaining -= len(block)
                    yield block
                self._current = None
        finally:
            self.close()

    def close(self) -> None:
        self._closed = True
        if self._current is not None:
            self._current.close()
            self._current = None


def stream_rows(query: RequestLogQuery, cap: int) -> SlicedStream:
    """The rows as a block stream, at most ``cap + 1`` (one more tells the cap was hit)."""
    return SlicedStream(query, cap)
