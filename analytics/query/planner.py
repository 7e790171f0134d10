"""The planner: which storage answers a query, with the choice and its reasons on the plan.

Priority (Snuba's storage selector, written where it is decided):
1. a storage that covers every column the query reads and the time range asked for;
2. among those, the one with the fewest rows per unit of time (rollups before raw);
3. the raw table ``gateway_analytics`` always covers everything and is the fallback.

A rollup (``analytics.query.rollups``) answers a ``Select`` whose innermost select (the
one reading rows) describes itself
(``metric_columns`` + ``coverage``) when every metric, group-by dimension and filter is
covered, the bucket is as coarse as the rollup's own (15 minutes; an hour for the
client rollup) and the zone's offsets over the range are multiples of it (so every bucket
edge is a rollup edge), and the range holds at least one whole rollup bucket. The aligned
middle of the range is then read from the rollup and the unaligned edges from raw rows
(``Plan.middle``); the printer merges both.
Each storage passed over is named on ``Plan.refused`` with the reason. When raw is
chosen and the query carries a ``fallback`` (a tree shaped for raw rows), that is run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings

from analytics.query.registry import BUCKETS, METRICS, TABLE
from analytics.query.rollups import DAY_TIERS, FAMILIES, Rollup, ceil_to, floor_to
from analytics.query.tree import (
    BucketList,
    Filter,
    FilterLeaf,
    FilterNode,
    Select,
    UnscopedSystemQuery,
)


@dataclass(frozen=True)
class Storage:
    name: str  # what ``meta.source`` and the query log call it
    table: str  # the ClickHouse table (Distributed in cluster mode) it reads
    rollup: Rollup | None = None


RAW = Storage(name="raw", table=TABLE)
STORAGES: dict[str, Storage] = {
    **{name: Storage(name=name, table=c[0].table, rollup=c[0]) for name, c in FAMILIES.items()},
    RAW.name: RAW,
}


@dataclass(frozen=True)
class Plan:
    """A query and the storage chosen for it. ``refused`` names each storage passed over
    and why ("group_by path not covered"), for the query log and debug output.
    ``middle`` is the part of the range aligned to the rollup's buckets it answers (the rest is
    read from raw rows); None when the storage is raw."""

    query: Select | BucketList | UnscopedSystemQuery
    storage: Storage | None  # None: a table-less query (bucket lists)
    refused: tuple[tuple[str, str], ...] = ()
    middle: tuple[datetime, datetime] | None = None
    # Coarser tiers read, each with its aligned part of the range (see ``tiling``).
    tiers: tuple[tuple[Rollup, datetime, datetime], ...] = ()

    @property
    def source(self) -> str:
        return self.storage.name if self.storage else "none"


def plan(query: Select | BucketList | UnscopedSystemQuery) -> Plan:
    """Choose the storage for ``query`` (see the module docstring for the priority)."""
    if isinstance(query, BucketList):
        return Plan(query=query, storage=None)
    select = query.select if isinstance(query, UnscopedSystemQuery) else query
    target = select.rows_select
    refused: list[tuple[str, str]] = []
    for storage in STORAGES.values():
        if storage.rollup is None:
            continue
        reason = refusal(target, storage.rollup)
        if reason is None:
            tiers = day_tiling(target, storage.name) or tiling(target, FAMILIES[storage.name][1:])
            middle = aligned_middle(target, storage.rollup.bucket_seconds)
            return Plan(query, storage, tuple(refused), middle, tiers)
        refused.append((storage.name, reason))
    if isinstance(query, Select) and query.fallback is not None:
        return Plan(query=query.fallback, storage=RAW, refused=tuple(refused))
    return Plan(query=query, storage=RAW, refused=tuple(refused))


def aligned_middle(select: Select, step: int = 900) -> tuple[datetime, datetime]:
    """``[start, end)`` shrunk to whole ``step``-long UTC buckets (a family's finest)."""
    rows = select.rows
    return ceil_to(rows.start, step), floor_to(rows.end, step)


def tiling(
    select: Select, tiers: tuple[Rollup, ...]
) -> tuple[tuple[Rollup, datetime, datetime], ...]:
    """The coarser tiers worth reading for ``select``, each with ``[start, end)``: the
    range shrunk to its whole intervals. The printer reads a tier's row only where the
    interval also lies inside one of the request's buckets and the next coarser tier's
    interval around it does not (so every 15 minutes is read exactly once, from the
    coarsest tier that can serve it). A tier is left out when no interval of it fits:
    buckets shorter than it, or as long but not aligned to it in the zone (Kolkata days
    hold no UTC day, but hold whole hours and quarter days)."""
    coverage = select.coverage
    rows = select.rows
    chosen = []
    for tier in tiers:
        step = tier.bucket_seconds
        start, end = tier.ceil(rows.start), tier.floor(rows.end)
        if start >= end:
            break
        if coverage is not None and coverage.bucket is not None:
            bucket_seconds = BUCKETS[coverage.bucket][1]
            offset = rows.start.astimezone(ZoneInfo(coverage.timezone)).utcoffset()
            misaligned = offset is None or offset.total_seconds() % step != 0
            if bucket_seconds < step or (bucket_seconds == step and misaligned):
                break
        chosen.append((tier, start, end))
    return tuple(chosen)


# Request buckets made of whole local days: a day tier row lies inside one of them.
_DAY_BUCKETS = ("1d", "1w")


def day_tiling(select: Select, family: str) -> tuple[tuple[Rollup, datetime, datetime], ...]:
    """The family's day tier of the request's zone (``ROLLUP_DAY_ZONES``), with the range
    shrunk to whole local days, when the buckets are whole local days and the range holds
    one; else ``()`` (the UTC tiers, ``tiling``). It replaces the UTC tiers: their hours
    are not inside the days of a zone at :30 or :45, and the days' partial first and last
    days read 15-minute rows."""
    coverage = select.coverage
    if coverage is None or coverage.bucket not in _DAY_BUCKETS:
        return ()
    tier = DAY_TIERS.get(family, {}).get(coverage.timezone)
    if tier is None:
        return ()
    start, end = tier.ceil(select.rows.start), tier.floor(select.rows.end)
    return ((tier, start, end),) if start < end else ()


def _filter_dimensions(node: Filter | None) -> list[str]:
    if node is None:
        return []
    if isinstance(node, FilterLeaf):
        return [node.dimension]
    return [name for child in node.children for name in _filter_dimensions(child)]


def _conjuncts(node: Filter | None) -> list[Filter]:
    """The filters every row must pass: the node, or the children of a top-level AND."""
    if node is None:
        return []
    if isinstance(node, FilterNode) and node.kind == "and":
        return [leaf for child in node.children for leaf in _conjuncts(child)]
    return [node]


def zone_aligned(timezone: str, start: datetime, end: datetime, step: int = 900) -> bool:
    """Whether ``timezone``'s UTC offset is a multiple of ``step`` seconds at the range's
    ends and at every day between (offsets change at most a few times a year, and every
    zone in use today moves between multiples of 15 minutes)."""
    zone = ZoneInfo(timezone)
    moment = start
    while True:
        offset = moment.astimezone(zone).utcoffset()
        if offset is None or offset.total_seconds() % step:
            return False
        if moment >= end:
            return True
        moment = min(moment + timedelta(days=1), end)


def refusal(select: Select, rollup: Rollup) -> str | None:
    """Why ``rollup`` cannot answer ``select`` exactly as raw rows would, or None."""
    coverage = select.coverage
    if coverage is None or not select.metric_columns:
        return "query does not describe its metrics and dimensions"
    if coverage.exact:
        return "exact requested"
    rows = select.rows
    for metric in select.metric_columns.values():
        registered = METRICS.get(metric)
        if metric not in rollup.metrics or (registered and registered.derived_from):
            return f"metric {metric} not covered"
    for name in coverage.dimensions:
        if name not in rollup.dimensions:
            return f"group_by {name} not covered"
    for name in _filter_dimensions(rows.filters):
        if name not in rollup.dimensions:
            return f"filter {name} not covered"
    if rows.model_ids and "model_id" not in rollup.dimensions:
        return "filter model_id not covered"
    if rows.endpoint_ids and "endpoint_id" not in rollup.dimensions:
        return "filter endpoint_id not covered"
    required = (rollup.requires_condition,) if rollup.requires_condition else ()
    if rows.conditions != required:
        if rollup.requires_condition is not None and not rows.conditions:
            return f"rows not restricted to {rollup.requires_condition.sql}"
        return "code-written conditions not covered"
    if rollup.requires is not None and rollup.requires not in _conjuncts(rows.filters):
        leaf = rollup.requires
        return f"rows not restricted to {leaf.dimension} {leaf.op} {leaf.value!r}"
    if rows.start < datetime.now(UTC) - timedelta(days=settings.ROLLUP_RETENTION_DAYS):
        return "range starts before ROLLUP_RETENTION_DAYS"
    step = rollup.bucket_seconds
    if coverage.bucket is not None:
        if BUCKETS[coverage.bucket][1] < step:
            return f"bucket {coverage.bucket} finer than {step // 60}m"
        if not zone_aligned(coverage.timezone, rows.start, rows.end, step):
            return f"zone {coverage.timezone} has offsets that are not multiples of {step // 60}m"
    middle = aligned_middle(select, step)
    if middle[0] >= middle[1]:
        return f"range holds no whole {step // 60}m bucket"
    return None
