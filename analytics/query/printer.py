"""The one printer: a plan becomes SQL text plus bound parameters.

Every ``Rows`` source prints as ``FROM <the plan's table> WHERE <tenant guard> AND <time
range> AND …``: the guard comes first and cannot be left out, because ``Rows`` cannot exist
without a ``ProjectScope``. Identifiers come from the registry and the code-owned column
sets; every value is a ``{name:Type}`` parameter. The runner accepts only what this module
prints (``PrintedQuery``), never a string.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from analytics.query.buckets import bucket_sql, fill_step_seconds
from analytics.query.planner import RAW, Plan
from analytics.query.registry import PARAM_TYPES, dimension
from analytics.query.rollups import BUCKET_15M, Rollup
from analytics.query.tree import (
    BucketList,
    Condition,
    Filter,
    FilterLeaf,
    Rows,
    Select,
    UnscopedSystemQuery,
)

_PRINTER_ONLY = object()


@dataclass(frozen=True)
class PrintedQuery:
    """SQL and its parameters, as only the printer makes them; ``source`` is the storage
    the planner chose (for the query log and ``meta``)."""

    sql: str
    params: dict[str, Any]
    source: str
    token: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.token is not _PRINTER_ONLY:
            raise TypeError("a PrintedQuery comes only from analytics.query.printer")


class Binder:
    """Hands out parameter names so values never collide and never touch SQL text."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.count = 0

    def bind(self, value: Any, ch_type: str) -> str:
        self.count += 1
        name = f"f{self.count}"
        self.params[name] = value
        return f"{{{name}:{ch_type}}}"

    def add(self, params: Mapping[str, Any]) -> None:
        """Parameters named by code: a clash would bind one value to two meanings."""
        for name, value in params.items():
            if name in self.params and self.params[name] != value:
                raise ValueError(f"query parameter {name!r} is bound twice")
            self.params[name] = value


def _leaf_sql(leaf: FilterLeaf, binder: Binder) -> str:
    spec = dimension(leaf.dimension)
    binder.add(spec.bound)  # a tag key: bound under a name of its own
    column = spec.sql
    ch_type = PARAM_TYPES[spec.type]
    op, value = leaf.op, leaf.value
    if op == "is_empty":
        empty = binder.bind(spec.empty, ch_type)
        return f"{column} = {empty}" if value else f"{column} != {empty}"
    if op in ("in", "not_in"):
        placeholder = binder.bind(list(value), f"Array({ch_type})")
        return f"{column} {'IN' if op == 'in' else 'NOT IN'} {placeholder}"
    if op == "contains":
        return f"position({column}, {binder.bind(value, 'String')}) > 0"
    if op == "starts_with":
        return f"startsWith({column}, {binder.bind(value, 'String')})"
    if op == "regex":
        return f"match({column}, {binder.bind(value, 'String')})"
    comparison = {"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
    return f"{column} {comparison} {binder.bind(value, ch_type)}"


def filter_sql(node: Filter, binder: Binder) -> str:
    """A user filter tree as SQL over registry expressions, values bound."""
    if isinstance(node, FilterLeaf):
        return _leaf_sql(node, binder)
    parts = [filter_sql(child, binder) for child in node.children]
    if node.kind == "not":
        return f"NOT ({parts[0]})"
    if not parts:
        return "1" if node.kind == "and" else "0"
    joiner = " AND " if node.kind == "and" else " OR "
    return "(" + joiner.join(f"({p})" for p in parts) + ")"


def guard_clauses(
    rows: Rows, binder: Binder, time_names: tuple[str, str] = ("start_time", "end_time")
) -> list[str]:
    """Tenant guard first, then the half-open time range, id filters, user filters and the
    code-written conditions. ``time_names`` names the range's parameters (a rollup plan
    reads two ranges in one query)."""
    if not isinstance(rows, Rows):
        raise TypeError("a data query reads Rows (which carry a ProjectScope)")
    clauses: list[str] = []
    scope = rows.scope
    if scope.project_ids is not None:
        if not scope.project_ids:
            clauses.append("0")
        else:
            binder.add({"scope_project_ids": list(scope.project_ids)})
            clauses.append("project_id IN {scope_project_ids:Array(UUID)}")
    start_name, end_name = time_names
    binder.add({start_name: rows.start, end_name: rows.end})
    clauses.append(
        f"timestamp >= {{{start_name}:DateTime64(3, 'UTC')}}"
        f" AND timestamp < {{{end_name}:DateTime64(3, 'UTC')}}"
    )
    if rows.model_ids:
        binder.add({"model_ids": list(rows.model_ids)})
        clauses.append("model_id IN {model_ids:Array(UUID)}")
    if rows.endpoint_ids:
        binder.add({"endpoint_ids": list(rows.endpoint_ids)})
        clauses.append("endpoint_id IN {endpoint_ids:Array(UUID)}")
    if rows.filters is not None:
        clauses.append(filter_sql(rows.filters, binder))
    clauses.extend(_conditions(rows.conditions, binder))
    return clauses


def _conditions(conditions: tuple[Condition, ...], binder: Binder) -> list[str]:
    for condition in conditions:
        binder.add(condition.params)
    return [condition.sql for condition in conditions]


def _where(clauses: list[str]) -> str:
    return " AND ".join(f"({c})" for c in clauses)


def _column_exprs(select: Select, rollup: Rollup | None) -> list[tuple[str, str]]:
    """The select's columns; on a rollup plan, its metric columns as merged states."""
    if rollup is None:
        return list(select.columns)
    return [
        (
            rollup.metrics[select.metric_columns[alias]]
            if alias in select.metric_columns
            else expr,
            alias,
        )
        for expr, alias in select.columns
    ]


def _tier_names(index: int) -> tuple[str, str]:
    return (f"tier{index}_start", f"tier{index}_end") if index else ("rollup_start", "rollup_end")


def _day_ends_in_range_sql(index: int, tier: Rollup, column: str) -> str:
    """The local day starting at ``column`` ends inside day tier ``index``'s range."""
    return f"{tier.end_sql(column)} <= {{{_tier_names(index)[1]}:DateTime64(3, 'UTC')}}"


def _usable_sql(index: int, tier: Rollup, column: str, bucket: str | None) -> str:
    """Whether tier ``index`` serves its interval starting at ``column``: it lies inside
    the tier's aligned range and inside one request bucket (a day tier's local day always
    does: the planner offers it only to buckets of whole local days of its zone)."""
    start, end = _tier_names(index)
    clauses = [f"{column} >= {{{start}:DateTime64(3, 'UTC')}}"]
    if tier.zone:
        clauses.append(_day_ends_in_range_sql(index, tier, column))
    else:
        clauses.append(f"{column} < {{{end}:DateTime64(3, 'UTC')}}")
        if bucket is not None:
            clauses.append(_same_bucket_sql(tier.bucket_seconds, bucket, column))
    return " AND ".join(clauses)


def _print_rollup_source(select: Select, plan: Plan, binder: Binder, indent: str) -> list[str]:
    """``FROM (rows of each rollup tier UNION ALL raw edges as the same states)``.

    The 15-minute-aligned middle of the range is read from the family's tiers: a row of
    a tier where its interval lies inside the range and inside one request bucket, unless
    the next coarser tier's interval around it does too (``planner.tiling``); the rest of
    the range from raw rows, aggregated into 15-minute states with the view's own
    expressions. Every branch carries the tenant guard, the id filters and the user
    filters, and all have identical types, so ``-Merge`` over them equals raw."""
    rollup = plan.storage.rollup
    rows = select.rows
    coverage = select.coverage
    bucket = coverage.bucket
    if bucket is not None:
        binder.add({"tz": coverage.timezone})
    used = [select.metric_columns[a] for _, a in select.columns if a in select.metric_columns]
    atoms = rollup.atoms_for(used)
    dims = list(
        dict.fromkeys(column for name in coverage.dimensions for column in rollup.dimensions[name])
    )
    keys = ", ".join(["timestamp", *dims])
    columns = ", ".join([keys, *(a.column for a in atoms)])
    ranges = [(rollup, *plan.middle), *plan.tiers]
    for index, (_, start, end) in enumerate(ranges):
        binder.add(dict(zip(_tier_names(index), (start, end), strict=True)))
    branches: list[list[str]] = []
    for index, (tier, start, end) in enumerate(ranges):
        where = guard_clauses(rows.between(start, end), binder, _tier_names(index))
        if tier.zone:
            where.append(_day_ends_in_range_sql(index, tier, "timestamp"))
        elif index and bucket is not None:  # 15-minute rows always lie in one bucket
            where.append(_same_bucket_sql(tier.bucket_seconds, bucket))
        if index + 1 < len(ranges):
            coarser = ranges[index + 1][0]
            around = coarser.start_sql()
            where.append(f"NOT ({_usable_sql(index + 1, coarser, around, bucket)})")
        branches.append([f"SELECT {columns}", f"FROM {tier.table}", f"WHERE {_where(where)}"])
    middle_start, middle_end = plan.middle
    edges = rows.narrowed(
        Condition.of(
            "(timestamp < {rollup_start:DateTime64(3, 'UTC')}"
            " OR timestamp >= {rollup_end:DateTime64(3, 'UTC')})",
            rollup_start=middle_start,
            rollup_end=middle_end,
        )
    )
    states = ", ".join(f"{a.state} AS {a.column}" for a in atoms)
    raw_columns = ", ".join([f"{BUCKET_15M} AS timestamp", *dims, states])
    branches.append(
        [
            f"SELECT {raw_columns}",
            "FROM (",
            "    SELECT *",
            f"    FROM {RAW.table}",
            f"    WHERE {_where(guard_clauses(edges, binder))}",
            ")",
            f"GROUP BY {keys}",
        ]
    )
    lines = [line for branch in branches for line in ([*branch, "UNION ALL"])][:-1]
    if bucket is not None and len(select.grouping_sets) > 1:
        # Several grouping sets would each merge every state (percentile states dominate
        # the cost); merging them once per (request bucket, dimensions) first leaves each
        # set a few rows to merge. The bucket start stands in for the timestamp: the
        # bucket of a bucket start is itself.
        merged = ", ".join(f"{a.merge_state} AS {a.column}" for a in atoms)
        dims_sql = "".join(f", {d}" for d in dims)
        lines = [
            f"SELECT {bucket_sql(bucket)} AS timestamp{dims_sql}, {merged}",
            "FROM (",
            *("    " + line for line in lines),
            ")",
            f"GROUP BY {keys}",
        ]
    inner = indent + "    "
    body = "\n".join(inner + line for line in lines)
    return [f"FROM (\n{body}\n{indent})"]


def _same_bucket_sql(step: int, bucket: str, column: str = "timestamp") -> str:
    """The ``step``-long interval starting at ``column`` lies in one request bucket (its
    first and last second fall in the same bucket)."""
    last = f"{column} + toIntervalSecond({step - 1})"
    return f"{bucket_sql(bucket, column)} = {bucket_sql(bucket, last)}"


def _print_select(
    select: Select, table: str, binder: Binder, indent: str = "", plan: Plan | None = None
) -> str:
    binder.add(select.params)
    reads_rows = isinstance(select.source, Rows)
    rollup = plan.storage.rollup if reads_rows and plan is not None and plan.storage else None
    # One column a line (aligned under the first), so a change reads as a one-line diff.
    columns = f",\n{indent}       ".join(
        f"{expr} AS {alias}" if alias else expr for expr, alias in _column_exprs(select, rollup)
    )
    head = f"SELECT {'DISTINCT ' if select.distinct else ''}{columns}"
    if isinstance(select.source, Rows) and rollup is not None:
        lines = [head, *_print_rollup_source(select, plan, binder, indent)]
    elif isinstance(select.source, Rows):
        lines = [head, f"FROM {table}", f"WHERE {_where(guard_clauses(select.source, binder))}"]
        outer_where = _conditions(select.where, binder)
        if outer_where:
            raise ValueError("conditions on table rows belong to Rows.conditions")
    else:
        inner = _print_select(select.source, table, binder, indent + "    ", plan)
        lines = [head, f"FROM (\n{inner}\n{indent})"]
        outer_where = _conditions(select.where, binder)
        if outer_where:
            lines.append(f"WHERE {_where(outer_where)}")
    if select.grouping_sets:
        sets = ", ".join(f"({', '.join(keys)})" for keys in select.grouping_sets)
        lines.append(f"GROUP BY GROUPING SETS ({sets})")
    elif select.group_by:
        lines.append(f"GROUP BY {', '.join(select.group_by)}")
    if select.order_by:
        lines.append(f"ORDER BY {', '.join(select.order_by)}")
    if select.limit is not None:
        suffix = f"_{len(indent) // 4}" if indent else ""
        binder.add({f"row_limit{suffix}": int(select.limit)})
        lines.append(f"LIMIT {{row_limit{suffix}:UInt64}}")
        if select.offset is not None:
            binder.add({f"row_offset{suffix}": int(select.offset)})
            lines.append(f"OFFSET {{row_offset{suffix}:UInt64}}")
    return "\n".join(indent + line for line in lines)


def _print_bucket_list(query: BucketList, binder: Binder) -> str:
    step = fill_step_seconds(query.bucket)
    seconds = (query.end - query.start).total_seconds()
    binder.add(
        {
            "tz": query.timezone,
            "start_time": query.start,
            "end_time": query.end,
            "step": step,
            "points": math.ceil(seconds / step) + 1,
        }
    )
    return (
        f"SELECT DISTINCT {bucket_sql(query.bucket, 'instant')} AS bucket FROM (\n"  # noqa: S608 - the printer: registry identifiers, values bound
        "  SELECT {start_time:DateTime64(3, 'UTC')} + toIntervalSecond(number * {step:UInt32})"
        " AS instant\n"
        "  FROM numbers({points:UInt64})\n"
        "  WHERE instant < {end_time:DateTime64(3, 'UTC')}\n"
        ") ORDER BY bucket"
    )


def print_plan(plan: Plan) -> PrintedQuery:
    """The SQL for a plan: the only way to get a ``PrintedQuery``."""
    binder = Binder()
    query = plan.query
    if isinstance(query, BucketList):
        sql = _print_bucket_list(query, binder)
    else:
        select = query.select if isinstance(query, UnscopedSystemQuery) else query
        if plan.storage is None:
            raise ValueError("a query reading rows needs a storage from the planner")
        sql = _print_select(select, plan.storage.table, binder, plan=plan)
    return PrintedQuery(sql, binder.params, plan.source, token=_PRINTER_ONLY)


def explain(printed: PrintedQuery) -> PrintedQuery:
    """The plan of a printed query (``EXPLAIN indexes = 1``: the parts and granules each
    index selects), for debug output; same parameters, same tenant guard."""
    return PrintedQuery(
        f"EXPLAIN indexes = 1 {printed.sql}", printed.params, printed.source, token=_PRINTER_ONLY
    )
