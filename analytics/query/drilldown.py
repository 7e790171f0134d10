"""From an analytics point to the request-log query that lists exactly its rows.

An analytics answer carries ``meta.drilldown``: the ``GET /gateway/requests`` parameters
shared by every point (range, scope, ids, the request's filters, bucket and zone) and, with
``top_n`` + ``include_other``, the filter that selects the ``other`` group. One point's
query is those parameters plus ``bucket_start`` = the point's ``timestamp`` and its group
values AND-ed into ``filters`` (``point_params``). The request log selects the bucket with
the very bucket expression of the series (zone, DST and week starts included) inside the
same ``[start_time, end_time)``, so the rows it lists are the rows the point counted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from analytics.query.buckets import format_time
from analytics.query.tree import Filter, FilterLeaf

if TYPE_CHECKING:
    from analytics.query.series import AnalyticsQuery

OTHER_LABEL = "other"


def filter_json(node: Filter) -> dict[str, Any]:
    """A validated filter tree back in the request grammar (what ``parse_filters`` reads)."""
    if isinstance(node, FilterLeaf):
        value = list(node.value) if isinstance(node.value, tuple) else node.value
        return {node.dimension: {"op": node.op, "value": value}}
    children = [filter_json(child) for child in node.children]
    if node.kind == "not":
        return {"not": children[0]}
    if node.kind == "and" and len(children) == 1:
        return children[0]
    return {node.kind: children}


def group_filter(groups: Mapping[str, Any]) -> dict[str, Any]:
    """The rows of one group: each dimension equal to its value; ``null`` is "not
    recorded" (``is_empty``)."""
    parts = [
        {name: {"op": "is_empty", "value": True} if value is None else value}
        for name, value in groups.items()
    ]
    return parts[0] if len(parts) == 1 else {"and": parts}


# The filter grammar's limits: at most 100 items per and/or list, 5 levels of nesting.
_OR_CHUNK = 100


def other_filter(names: list[str], top_groups: list[dict[str, Any]]) -> dict[str, Any]:
    """The rows outside every top group, within the request grammar's limits."""
    if len(names) == 1:
        name = names[0]
        values = [g[name] for g in top_groups if g[name] is not None]
        parts: list[dict[str, Any]] = []
        if values:
            parts.append({name: {"op": "not_in", "value": values}})
        if len(values) < len(top_groups):  # "not recorded" is a top group too
            parts.append({name: {"op": "is_empty", "value": False}})
        return parts[0] if len(parts) == 1 else {"and": parts}
    filters = [group_filter(g) for g in top_groups]
    chunks = [{"or": filters[i : i + _OR_CHUNK]} for i in range(0, len(filters), _OR_CHUNK)]
    return {"not": chunks[0] if len(chunks) == 1 else {"or": chunks}}


def _conjuncts(node: dict[str, Any]) -> list[dict[str, Any]]:
    return list(node["and"]) if list(node) == ["and"] else [node]


def drilldown_template(
    query: AnalyticsQuery, top_groups: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """``meta.drilldown`` for an answer; ``top_groups`` are the ranked groups (rendered as
    in the series) when ``top_n`` folded the rest into ``other``."""
    params: dict[str, Any] = {
        "start_time": format_time(query.start),
        "end_time": format_time(query.end),
        "time_bucket": query.bucket,
        "timezone": query.timezone,
    }
    if not query.scope.is_all and query.scope.project_ids:
        params["project_ids"] = ",".join(query.scope.as_list() or [])
    if query.model_ids:
        params["model_ids"] = ",".join(str(m) for m in query.model_ids)
    if query.endpoint_ids:
        params["endpoint_ids"] = ",".join(str(e) for e in query.endpoint_ids)
    base = filter_json(query.filters) if query.filters is not None else None
    if base == {"and": []}:
        base = None
    other = None
    if top_groups and query.include_other:
        other = other_filter(list(query.group_by), top_groups)
    return {
        "params": params,
        "filters": base,
        "group_by": list(query.group_by),
        "other_filter": other,
    }


def point_params(drilldown: Mapping[str, Any], point: Mapping[str, Any]) -> dict[str, str]:
    """The ``GET /gateway/requests`` parameters listing exactly one point's rows."""
    groups = point.get("groups") or {}
    names = drilldown["group_by"]
    is_other = drilldown.get("other_filter") is not None and all(
        groups.get(name) == OTHER_LABEL for name in names
    )
    parts: list[dict[str, Any]] = []
    if drilldown.get("filters"):
        parts += _conjuncts(drilldown["filters"])
    if names and is_other:
        parts += _conjuncts(drilldown["other_filter"])
    elif names:
        parts += _conjuncts(group_filter({name: groups.get(name) for name in names}))
    params = {**drilldown["params"], "bucket_start": point["timestamp"]}
    if parts:
        params["filters"] = json.dumps(parts[0] if len(parts) == 1 else {"and": parts})
    return params
