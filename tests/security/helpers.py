"""Shared pieces of the security suite and the query-count tests.

``QuerySpy`` wraps ``analytics.query.runner.run`` in a pass-through that records each
``PrintedQuery`` and then runs it for real (no mock: chDB answers every query), so a test
can assert on the exact SQL text and bound parameters a request produced, and count them.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from analytics.query import runner
from analytics.query.printer import PrintedQuery
from analytics.query.registry import TABLE
from analytics.query.rollups import ROLLUPS
from tests.conftest import insert_rows, truncate_clickhouse

GUARD = "project_id IN {scope_project_ids:Array(UUID)}"
# A read of the table or of a rollup of it (whose names start with the table's), as the
# printer emits it: the guard opens the WHERE clause.
_TABLES = "|".join(re.escape(name) for name in (TABLE, *(r.table for r in ROLLUPS.values())))
_GUARDED_READ = re.compile(
    rf"FROM ({_TABLES})\n[ ]*WHERE \({re.escape(GUARD)}\) AND \(timestamp >= ",
)


class QuerySpy:
    """Every ``PrintedQuery`` the runner received since install (or the last ``clear``)."""

    def __init__(self) -> None:
        self.queries: list[PrintedQuery] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> QuerySpy:
        real_run = runner.run

        def recording_run(printed: PrintedQuery, **kwargs: Any) -> Any:
            self.queries.append(printed)
            return real_run(printed, **kwargs)

        # ``runner.execute`` looks ``run`` up in the module at call time.
        monkeypatch.setattr(runner, "run", recording_run)
        return self

    def clear(self) -> None:
        self.queries.clear()

    @property
    def count(self) -> int:
        return len(self.queries)

    @property
    def sql(self) -> list[str]:
        return [q.sql for q in self.queries]

    def table_reads(self) -> list[PrintedQuery]:
        return [q for q in self.queries if TABLE in q.sql]


def assert_guarded(queries: Iterable[PrintedQuery], project_ids: Iterable[Any]) -> None:
    """Every query that reads the table opens each of its table reads with the tenant
    guard, bound to exactly ``project_ids``; every other query reads no table (the
    table-less bucket list)."""
    expected = sorted(str(p) for p in project_ids)
    queries = list(queries)
    assert queries, "the request ran no ClickHouse query"
    for printed in queries:
        reads = printed.sql.count(TABLE)
        if reads == 0:
            assert "FROM numbers(" in printed.sql, printed.sql
            assert "scope_project_ids" not in printed.params
            continue
        assert len(_GUARDED_READ.findall(printed.sql)) == reads, printed.sql
        assert sorted(str(p) for p in printed.params["scope_project_ids"]) == expected


def flat_values(value: Any) -> Iterator[Any]:
    """Every scalar inside a bound parameter (lists, tuples, dicts nested)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from flat_values(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from flat_values(item)
    else:
        yield value


def bound_values(queries: Iterable[PrintedQuery]) -> list[Any]:
    return [v for q in queries for p in q.params.values() for v in flat_values(p)]


def assert_error_envelope(response: Any, *statuses: int) -> dict[str, Any]:
    """A 4xx in the API's error envelope (never a 5xx, never HTML)."""
    assert response.status_code in statuses, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = json.loads(response.content)
    assert body["success"] is False
    assert set(body["error"]) >= {"code", "message", "details"}
    return body


def text_of(response: Any) -> str:
    return response.content.decode("utf-8", "replace")


def uid(text: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"budmetrics-security:{text}")


def module_rows(rows: list[dict[str, Any]]) -> Any:
    """An autouse module fixture: the table holds exactly ``rows`` while the module's tests
    run (they only read), and is emptied afterwards."""

    @pytest.fixture(scope="module", autouse=True)
    def _traffic(django_db_setup: Any, django_db_blocker: Any) -> Any:
        with django_db_blocker.unblock():
            truncate_clickhouse()
            insert_rows(rows)
            yield
            truncate_clickhouse()

    return _traffic
