"""Structure: the source tree keeps every ClickHouse read behind the query package.

Walks every Python module of the project (not tests, not the virtualenv) with ``ast`` and
checks that
- ``UnscopedSystemQuery(...)`` is constructed only in ``analytics/query/system.py``, and
  ``PrintedQuery(...)`` only in the printer;
- SQL that reads the table (``FROM {…}`` or ``FROM gateway_analytics`` in a string or an
  f-string) is written only by the printer, plus the listed DDL, demo and management code;
- nothing outside the runner calls the ClickHouse client's query methods, plus the listed
  health checks, connection plumbing, demo, management code and benchmarks.

Each allowance is named with why; an allowance that no longer exists fails too, so the
lists cannot rot into blanket exemptions.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from analytics.query import system
from analytics.query.tree import UnscopedSystemQuery

ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".venv", "tests", "node_modules", "var", ".git", "__pycache__"}

PRINTER = "analytics/query/printer.py"
RUNNER = "analytics/query/runner.py"
SYSTEM = "analytics/query/system.py"

# Modules that may write SQL naming the table, and why.
TABLE_SQL_ALLOWED = {
    PRINTER: "the one printer of data queries",
    "analytics/schema.py": "DDL: CREATE/ALTER/DROP of gateway_analytics",
    "analytics/demo/generator.py": "demo traffic: INSERT … SELECT and a row count",
    "analytics/management/commands/apply_retention.py": "retention DDL (ALTER … MODIFY TTL)",
    "analytics/management/commands/generate_traffic.py": "demo traffic (the generator's client)",
    "analytics/query/rollups.py": "the rollup view's SELECT (DDL and backfills, never a request)",
    "analytics/management/commands/rebuild_rollups.py": "rollup repair: DELETE + INSERT … SELECT",
    "bench/overview_growth.py": "benchmark set-up: copies rollup rows back in time (synthetic)",
}
TABLE_SQL_ALLOWED_DIRS: dict[str, str] = {}

# Modules that may call the ClickHouse client directly, and why.
CLIENT_CALLS_ALLOWED = {
    RUNNER: "the one runner of printed queries",
    "budmetrics_site/health.py": "readiness check: SELECT 1",
    "budmetrics_site/clickhouse/base.py": "connection plumbing: CREATE DATABASE, SELECT 1 ping",
    "analytics/demo/generator.py": "demo traffic: INSERT … SELECT and a row count",
    "analytics/management/commands/apply_retention.py": "retention DDL through a cursor",
    "analytics/management/commands/generate_traffic.py": "demo traffic (the generator's client)",
    "analytics/management/commands/rebuild_rollups.py": "rollup repair: DELETE + INSERT … SELECT",
}
CLIENT_CALLS_ALLOWED_DIRS = {
    "bench/": "benchmarks: the direct-SQL baseline the API is compared with",
}
# clickhouse-connect Client methods that send SQL.
CLIENT_METHODS = {
    "query",
    "command",
    "raw_query",
    "raw_stream",
    "query_df",
    "query_np",
    "query_arrow",
    "query_df_stream",
    "query_np_stream",
    "query_arrow_stream",
    "query_rows_stream",
    "query_row_block_stream",
    "query_column_block_stream",
}

_TABLE_SQL = re.compile(r"\bFROM\s+[`\"]?(\{|gateway_analytics\b)", re.IGNORECASE)


def modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if SKIP_DIRS & set(relative.parts[:-1]) or relative.parts[0] in SKIP_DIRS:
            continue
        yield relative.as_posix(), ast.parse(path.read_text(), filename=str(relative))


MODULES = dict(modules())


def _allowed(path: str, files: dict[str, str], dirs: dict[str, str]) -> bool:
    return path in files or any(path.startswith(prefix) for prefix in dirs)


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _string_texts(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """Every string literal, and every f-string with ``{}`` for its holes."""
    joined_parts: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = ""
            for part in node.values:
                joined_parts.add(id(part))
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    text += part.value
                else:
                    text += "{}"
            yield node.lineno, text
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in joined_parts
        ):
            yield node.lineno, node.value


def test_the_walk_sees_the_whole_project():
    for expected in (PRINTER, RUNNER, SYSTEM, "geo/queries.py", "blocking/queries.py"):
        assert expected in MODULES
    assert not any(path.startswith("tests/") for path in MODULES)


def test_unscoped_system_queries_are_constructed_only_in_system_module():
    found = [
        (path, node.lineno)
        for path, tree in MODULES.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and _called_name(node) == "UnscopedSystemQuery"
    ]
    assert found, "the system module builds its unscoped queries by name"
    assert {path for path, _ in found} == {SYSTEM}, found


def test_every_unscoped_system_query_states_its_purpose():
    purposes = [
        keyword.value.value
        for node in ast.walk(MODULES[SYSTEM])
        if isinstance(node, ast.Call) and _called_name(node) == "UnscopedSystemQuery"
        for keyword in node.keywords
        if keyword.arg == "purpose" and isinstance(keyword.value, ast.Constant)
    ]
    calls = [
        node
        for node in ast.walk(MODULES[SYSTEM])
        if isinstance(node, ast.Call) and _called_name(node) == "UnscopedSystemQuery"
    ]
    assert len(purposes) == len(calls)
    assert all(p.strip() for p in purposes)
    assert system.UnscopedSystemQuery is UnscopedSystemQuery


def test_printed_queries_are_made_only_by_the_printer():
    found = {
        path
        for path, tree in MODULES.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and _called_name(node) == "PrintedQuery"
    }
    assert found == {PRINTER}


def test_sql_reading_the_table_is_written_only_by_the_printer():
    offenders = [
        (path, line, text[:120])
        for path, tree in MODULES.items()
        if not _allowed(path, TABLE_SQL_ALLOWED, TABLE_SQL_ALLOWED_DIRS)
        for line, text in _string_texts(tree)
        if _TABLE_SQL.search(text)
    ]
    assert offenders == []


def test_the_printer_is_where_table_reads_are_written():
    texts = [text for _, text in _string_texts(MODULES[PRINTER])]
    assert any(_TABLE_SQL.search(text) for text in texts)


def test_only_the_runner_calls_the_clickhouse_client():
    offenders = [
        (path, node.lineno, _called_name(node))
        for path, tree in MODULES.items()
        if not _allowed(path, CLIENT_CALLS_ALLOWED, CLIENT_CALLS_ALLOWED_DIRS)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in CLIENT_METHODS
    ]
    assert offenders == []


def test_the_runner_does_call_the_client():
    calls = [
        node.func.attr
        for node in ast.walk(MODULES[RUNNER])
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    ]
    assert "query" in calls


@pytest.mark.parametrize(
    "allowance",
    [
        *TABLE_SQL_ALLOWED,
        *TABLE_SQL_ALLOWED_DIRS,
        *CLIENT_CALLS_ALLOWED,
        *CLIENT_CALLS_ALLOWED_DIRS,
    ],
)
def test_every_allowance_names_something_that_exists(allowance):
    assert (ROOT / allowance).exists(), f"stale allowance: {allowance}"


def test_no_cursor_on_the_clickhouse_alias_outside_the_allowances():
    """``connections["clickhouse"].cursor()`` is another way around the runner."""
    offenders = []
    for path, tree in MODULES.items():
        if _allowed(path, CLIENT_CALLS_ALLOWED, CLIENT_CALLS_ALLOWED_DIRS):
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Subscript)
                and isinstance(node.slice, ast.Constant)
                and node.slice.value == "clickhouse"
                and isinstance(node.value, ast.Name)
                and node.value.id == "connections"
            ):
                offenders.append((path, node.lineno))
    # The runner's client comes through budmetrics_site.clickhouse.client.get_client.
    assert {p for p, _ in offenders} <= {"budmetrics_site/clickhouse/client.py"}, offenders
