"""The one canonical form of a request's parameters, shared by the response-cache key and
the query audit, so "the same request" means the same thing in both places.

Canonical means JSON-safe and order-stable: mapping keys sorted, sets sorted, lists kept
in their order (the order of ``metrics`` or ``group_by`` shapes the answer; fields whose
order means nothing, such as id lists, are sorted by their serializers), aware datetimes
in UTC with ``Z``,
UUIDs, dates and decimals as text, a ``ProjectScope`` as ``"all"`` or its sorted ids.
Nothing is truncated or escaped here: that would let two different requests share a cache
entry; the audit applies its own storage limits on top (``analytics.access.audit``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from analytics.query.buckets import format_time
from analytics.query.scope import ProjectScope


def canonical(value: Any) -> Any:
    """``value`` (validated parameters, nested) as plain JSON data in one stable order."""
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in sorted(value.items(), key=lambda i: str(i[0]))}
    if isinstance(value, list | tuple | set | frozenset):
        items = [canonical(v) for v in value]
        if isinstance(value, set | frozenset):
            items.sort(key=lambda v: json.dumps(v, sort_keys=True))
        return items
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, ProjectScope):
        return "all" if value.is_all else value.as_list()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
