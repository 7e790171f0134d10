"""What the runner did for one answer, for the response's ``meta``: which ClickHouse served
it (``served_by``) and, when debug output was asked for, each statement's SQL
(placeholders, never values), plan and engine profile (``debug``).

The endpoint layer opens a trace around one answer (``tracing``); the runner records into
it. A context variable carries it, so selectors need not pass it along, and a query run
outside any trace (Celery jobs, the admin) records nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Trace:
    debug: bool = False
    served_by: list[str] = field(default_factory=list)  # one entry per statement
    statements: list[dict[str, Any]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # storage of each data statement
    approximate: dict[str, str] = field(default_factory=dict)  # sketch metric -> bound

    def storage(self) -> dict[str, Any]:
        """``source`` (the storage every data statement read: "raw", a rollup name, or
        several joined by "+") and ``approximate`` (metrics taken from a sketch, with their
        error bound), for an answer's ``data.meta``: part of the cached body, unlike
        ``meta()``, because a cache hit runs no statement."""
        return {
            "source": "+".join(dict.fromkeys(self.sources)) or "raw",
            "approximate": dict(self.approximate),
        }

    @property
    def used_backup(self) -> bool:
        return "backup" in self.served_by

    def meta(self) -> dict[str, Any]:
        """The response's ``meta``: ``served_by`` is "backup" if any statement was."""
        meta: dict[str, Any] = {"served_by": "backup" if self.used_backup else "primary"}
        if self.debug:
            meta["debug"] = {"statements": list(self.statements)}
        return meta


_current: ContextVar[Trace | None] = ContextVar("query_trace", default=None)


@contextmanager
def tracing(*, debug: bool = False) -> Iterator[Trace]:
    """Record the queries run inside the block (nested blocks each get their own)."""
    trace = Trace(debug=debug)
    token = _current.set(trace)
    try:
        yield trace
    finally:
        _current.reset(token)


def current() -> Trace | None:
    return _current.get()


def profile_of(summary: dict[str, Any], elapsed_ms: float, *, embedded: bool) -> dict[str, Any]:
    """The engine's own figures for one statement, from the query summary: a server's
    ``X-ClickHouse-Summary`` header (rows and bytes read, result size, elapsed, and memory
    on versions that send it). Embedded chDB 4.4 reports only its *result* rows and bytes
    (under the summary's read_* names) and elapsed time, so for it read_rows and read_bytes
    are null and its figures appear as result_rows and result_bytes. A figure the engine
    did not report is null, never a guess; the plan shows what a query selects to read."""

    def number(key: str) -> int | None:
        value = summary.get(key)
        return int(value) if value not in (None, "") else None

    elapsed_ns = number("elapsed_ns")
    profile = {
        "engine": "chDB" if embedded else "server",
        "read_rows": None if embedded else number("read_rows"),
        "read_bytes": None if embedded else number("read_bytes"),
        "result_rows": number("read_rows" if embedded else "result_rows"),
        "result_bytes": number("read_bytes" if embedded else "result_bytes"),
        "engine_elapsed_ms": round(elapsed_ns / 1e6, 3) if elapsed_ns is not None else None,
        "memory_usage_bytes": number("memory_usage"),
        "client_elapsed_ms": round(elapsed_ms, 3),
    }
    return profile
