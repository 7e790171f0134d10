"""Every read across all projects that has no caller behind it, in one place.

Each is an ``UnscopedSystemQuery`` stating its purpose; none may be run on a client's
behalf, and ``tests/security`` checks that nothing else prints an unscoped query.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from analytics.query.runner import execute
from analytics.query.tree import Condition, Select, UnscopedSystemQuery, system_rows


def active_projects_query(since: datetime, until: datetime, limit: int) -> UnscopedSystemQuery:
    return UnscopedSystemQuery(
        purpose="dashboard warmer: list projects with recent traffic",
        select=Select(
            columns=(("project_id", ""),),
            source=system_rows(since, until),
            distinct=True,
            order_by=("project_id",),
            limit=limit,
        ),
    )


def active_project_ids(since: datetime, until: datetime, limit: int) -> list[uuid.UUID]:
    """Projects with traffic in ``[since, until)``: which dashboards the warmer keeps hot."""
    query = active_projects_query(since, until, limit)
    return [uuid.UUID(str(row[0])) for row in execute(query, max_rows=limit).rows]


def rule_match_query(rule_id: uuid.UUID, start: datetime, end: datetime) -> UnscopedSystemQuery:
    return UnscopedSystemQuery(
        purpose="blocking rule admin page: matches of one rule",
        select=Select(
            columns=(("count()", ""),),
            source=system_rows(
                start, end, Condition.of("block_rule_id = {rule_id:UUID}", rule_id=rule_id)
            ),
        ),
    )


def rule_match_count(rule_id: uuid.UUID, start: datetime, end: datetime) -> int:
    """Requests attributed to one blocking rule in ``[start, end)``, all projects: the
    staff-only admin page of the rule shows it."""
    query = rule_match_query(rule_id, start, end)
    return int(execute(query, max_rows=1).rows[0][0])
