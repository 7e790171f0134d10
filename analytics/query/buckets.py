"""Time buckets, zones and gap filling: one module for every endpoint with a time series.

Buckets align to the local clock of the request's IANA zone (days start at local midnight,
a DST day has 23 or 25 hourly buckets). The bucket expression is ClickHouse's, bound to
``{tz:String}``; the bucket list for gap filling is printed from the same expression
(``tree.BucketList``), so a filled series has exactly the buckets ClickHouse would make.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings

from analytics.query.registry import AUTO_BUCKET_POINT_BUDGET, BUCKETS

# Gap-fill candidates are this far apart at most: every zone offset is a multiple of 15 min.
FILL_STEP_SECONDS = 900


def bucket_count(start: datetime, end: datetime, bucket: str) -> int:
    return max(1, math.ceil((end - start).total_seconds() / BUCKETS[bucket][1]))


def auto_bucket(start: datetime, end: datetime) -> str:
    """The finest bucket keeping the series within AUTO_BUCKET_POINT_BUDGET points."""
    for name in BUCKETS:
        if bucket_count(start, end, name) <= AUTO_BUCKET_POINT_BUDGET:
            return name
    return "1w"


def finest_fitting_bucket(start: datetime, end: datetime, groups: int) -> str | None:
    """The finest bucket whose series fits MAX_RESULT_SIZE points for ``groups`` groups."""
    for name in BUCKETS:
        if bucket_count(start, end, name) * max(groups, 1) <= settings.MAX_RESULT_SIZE:
            return name
    return None


def bucket_sql(bucket: str, column: str = "timestamp") -> str:
    """Bucket start in the request's zone (bound as {tz:String}), so days and hours align
    to local midnight/hour boundaries."""
    if bucket == "1d":
        return f"toStartOfDay({column}, {{tz:String}})"
    if bucket == "1w":
        return f"toDateTime(toMonday({column}, {{tz:String}}), {{tz:String}})"
    return f"toStartOfInterval({column}, {BUCKETS[bucket][0]}, {{tz:String}})"


def fill_step_seconds(bucket: str) -> int:
    return min(BUCKETS[bucket][1], FILL_STEP_SECONDS)


# A bucket next to its successor is at most this much longer than nominal (a DST shift).
_MAX_DST_SHIFT_SECONDS = 3600


def bucket_widths(buckets: list[datetime], bucket: str, timezone: str) -> dict[datetime, float]:
    """Each bucket's real width in seconds: days and weeks end at the next local midnight
    (23 or 25 hours on DST days); shorter buckets end where the next one starts when it is
    the adjacent one, else (a gap, when gaps are not filled) after their nominal width."""
    widths: dict[datetime, float] = {}
    nominal = BUCKETS[bucket][1]
    zone = ZoneInfo(timezone)
    for i, start in enumerate(buckets):
        if bucket in ("1d", "1w"):
            local = start.astimezone(zone)
            days = 7 if bucket == "1w" else 1
            following = (local.replace(tzinfo=None) + timedelta(days=days)).replace(tzinfo=zone)
            widths[start] = (following.astimezone(UTC) - start).total_seconds()
            continue
        gap = (buckets[i + 1] - start).total_seconds() if i + 1 < len(buckets) else None
        adjacent = gap is not None and gap <= nominal + _MAX_DST_SHIFT_SECONDS
        widths[start] = gap if adjacent else float(nominal)
    return widths


def format_time(value: datetime, zone: ZoneInfo | str | None = None) -> str:
    """ISO 8601 in ``zone`` (UTC by default) with ``Z`` for UTC: the one way every answer,
    echo, audit row and cache key writes an instant. Naive values are UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    target = ZoneInfo(zone) if isinstance(zone, str) else (zone or UTC)
    text = value.astimezone(target).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
