"""The frozen query tree: what a data query asks, before anyone decides where it is answered.

A query is a ``Select`` whose innermost source is ``Rows``: the caller's traffic rows, which
cannot be described without a ``ProjectScope``. Expressions are code-owned SQL texts
(registry entries and the per-endpoint column sets), never user input; every user value
travels as a bound parameter (``params`` on the node that uses it, or a filter leaf's
value, which the printer binds). Nodes print only through ``analytics.query.printer``.

System queries that must read across projects (which projects to warm, one rule's match
count on a staff page) have no caller: they are ``UnscopedSystemQuery`` with a stated
purpose, so every such read can be found by name and is tested.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from analytics.query.scope import ProjectScope


@dataclass(frozen=True)
class FilterLeaf:
    """``dimension`` (a registry name) compared by ``op`` with a user value."""

    dimension: str
    op: str
    value: Any


@dataclass(frozen=True)
class FilterNode:
    kind: str  # "and" | "or" | "not"
    children: tuple[FilterLeaf | FilterNode, ...]


Filter = FilterLeaf | FilterNode


@dataclass(frozen=True)
class Condition:
    """A predicate written in code (whitelisted identifiers) with its own bound values."""

    sql: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, sql: str, **params: Any) -> Condition:
        return cls(sql, MappingProxyType(dict(params)))


@dataclass(frozen=True)
class Rows:
    """Gateway traffic rows of the caller's projects in ``[start, end)``, narrowed by the id
    filters every endpoint shares, a user filter tree and code-written conditions."""

    scope: ProjectScope
    start: datetime
    end: datetime
    model_ids: tuple[uuid.UUID, ...] = ()
    endpoint_ids: tuple[uuid.UUID, ...] = ()
    filters: Filter | None = None
    conditions: tuple[Condition, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.scope, ProjectScope):
            raise TypeError("a ProjectScope is required to describe a data query")

    def narrowed(self, *conditions: Condition) -> Rows:
        return Rows(
            scope=self.scope,
            start=self.start,
            end=self.end,
            model_ids=self.model_ids,
            endpoint_ids=self.endpoint_ids,
            filters=self.filters,
            conditions=(*self.conditions, *conditions),
        )

    def between(self, start: datetime, end: datetime) -> Rows:
        return Rows(
            scope=self.scope,
            start=start,
            end=end,
            model_ids=self.model_ids,
            endpoint_ids=self.endpoint_ids,
            filters=self.filters,
            conditions=self.conditions,
        )


@dataclass(frozen=True)
class Window:
    """Scope, time range and id filters shared by the fixed-shape traffic queries (top
    routes, clients, geography): the part of their request that becomes ``Rows``."""

    scope: ProjectScope
    start: datetime
    end: datetime
    model_ids: Sequence[uuid.UUID] = ()
    endpoint_ids: Sequence[uuid.UUID] = ()

    def rows(self, *conditions: Condition) -> Rows:
        return Rows(
            scope=self.scope,
            start=self.start,
            end=self.end,
            model_ids=tuple(self.model_ids),
            endpoint_ids=tuple(self.endpoint_ids),
            conditions=conditions,
        )


@dataclass(frozen=True)
class Coverage:
    """What a query asks beyond its metrics, so the planner can tell whether a rollup
    answers it: the dimensions it groups by, its time bucket (None: none, the whole range)
    in ``timezone``, and whether the caller insisted on raw rows (``exact``)."""

    dimensions: tuple[str, ...] = ()
    bucket: str | None = None
    timezone: str = "UTC"
    exact: bool = False


@dataclass(frozen=True)
class Select:
    """``SELECT columns FROM source [WHERE where] [GROUP BY …] [ORDER BY …] [LIMIT …]``.

    ``columns`` are ``(expression, alias)`` pairs ("" for no alias); ``where`` filters a
    subquery source (a ``Rows`` source gets its WHERE from the printer's guard);
    ``grouping_sets``, when given, replaces ``group_by``. ``limit``/``offset`` are bound.
    ``metric_columns`` names the columns that are registry metrics (alias -> metric) and
    ``coverage`` describes the rest; with both, the planner may answer from a rollup
    (the printer then prints those columns from merged states). Without ``coverage`` a
    query reads raw rows. In a nested query it is the innermost select (the one reading
    ``Rows``) that describes itself; the outer ones read its columns either way.
    ``fallback`` is the tree to run instead when no rollup answers (same output columns):
    a query shaped for merged states (one pass over pre-aggregated rows) may have a
    faster shape over raw rows (pre-grouping, exact percentile states).
    """

    columns: tuple[tuple[str, str], ...]
    source: Rows | Select
    where: tuple[Condition, ...] = ()
    group_by: tuple[str, ...] = ()
    grouping_sets: tuple[tuple[str, ...], ...] = ()
    order_by: tuple[str, ...] = ()
    limit: int | None = None
    offset: int | None = None
    distinct: bool = False
    params: Mapping[str, Any] = field(default_factory=dict)
    metric_columns: Mapping[str, str] = field(default_factory=dict)
    coverage: Coverage | None = None
    fallback: Select | None = None

    @property
    def rows(self) -> Rows:
        """The scoped rows this query reads, however deeply nested."""
        source = self.source
        while isinstance(source, Select):
            source = source.source
        return source

    @property
    def rows_select(self) -> Select:
        """The innermost select: the one reading ``Rows`` (what the planner plans)."""
        select = self
        while isinstance(select.source, Select):
            select = select.source
        return select


@dataclass(frozen=True)
class BucketList:
    """Every bucket start in ``[start, end)`` for ``bucket`` in ``timezone``: a table-less
    query (``numbers()``) using the very bucket expression of the series, so gap filling
    puts buckets exactly where ClickHouse does, DST days included."""

    start: datetime
    end: datetime
    bucket: str
    timezone: str


@dataclass(frozen=True)
class UnscopedSystemQuery:
    """A read across every project with no caller behind it. ``purpose`` says why it may
    ignore tenancy; only the service itself runs these, never on a client's behalf."""

    purpose: str
    select: Select

    def __post_init__(self) -> None:
        if not self.purpose.strip():
            raise ValueError("an unscoped system query must state its purpose")
        if not self.select.rows.scope.is_all:
            raise ValueError("a system query reads all projects; use a scoped Select instead")


def system_rows(start: datetime, end: datetime, *conditions: Condition) -> Rows:
    """Rows of every project, for ``UnscopedSystemQuery`` only."""
    return Rows(
        scope=ProjectScope.all_projects(), start=start, end=end, conditions=tuple(conditions)
    )
