"""The tenant guard: every ClickHouse query is limited to the caller's projects.

Query builders take a ``ProjectScope`` and call ``base_conditions``; there is no way to get
the WHERE clause of a data query without one, so a new endpoint cannot forget access
control (Snuba's required-filter rule, PostHog's team guard).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ProjectScope:
    """Projects a caller may read. ``project_ids=None`` means every project (superusers,
    unrestricted service clients); an empty tuple means none, and matches no rows."""

    project_ids: tuple[uuid.UUID, ...] | None

    @classmethod
    def all_projects(cls) -> ProjectScope:
        return cls(project_ids=None)

    @classmethod
    def only(cls, project_ids: Sequence[uuid.UUID | str]) -> ProjectScope:
        unique = sorted({uuid.UUID(str(p)) for p in project_ids}, key=str)
        return cls(project_ids=tuple(unique))

    @property
    def is_all(self) -> bool:
        return self.project_ids is None

    def as_list(self) -> list[str] | None:
        return None if self.project_ids is None else [str(p) for p in self.project_ids]


@dataclass
class Conditions:
    """WHERE fragments and their bound parameters, built together so a value can never
    be placed in SQL text."""

    clauses: list[str]
    params: dict[str, object]

    def add(self, clause: str, **params: object) -> None:
        self.clauses.append(clause)
        self.params.update(params)

    def sql(self) -> str:
        return " AND ".join(f"({c})" for c in self.clauses) if self.clauses else "1"


def base_conditions(
    scope: ProjectScope,
    start: datetime,
    end: datetime,
    *,
    model_ids: Sequence[uuid.UUID] = (),
    endpoint_ids: Sequence[uuid.UUID] = (),
) -> Conditions:
    """Project scope, half-open time range ``[start, end)`` and the id filters every data
    endpoint shares."""
    if not isinstance(scope, ProjectScope):
        raise TypeError("a ProjectScope is required to build a data query")
    conditions = Conditions(clauses=[], params={})
    if scope.project_ids is not None:
        if not scope.project_ids:
            conditions.add("0")
        else:
            conditions.add(
                "project_id IN {scope_project_ids:Array(UUID)}",
                scope_project_ids=list(scope.project_ids),
            )
    conditions.add(
        "timestamp >= {start_time:DateTime64(3, 'UTC')}"
        " AND timestamp < {end_time:DateTime64(3, 'UTC')}",
        start_time=start,
        end_time=end,
    )
    if model_ids:
        conditions.add("model_id IN {model_ids:Array(UUID)}", model_ids=list(model_ids))
    if endpoint_ids:
        conditions.add("endpoint_id IN {endpoint_ids:Array(UUID)}", endpoint_ids=list(endpoint_ids))
    return conditions
