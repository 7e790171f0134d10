"""GET /gateway/blocking-stats follows the request's time zone like every other chart:
buckets start at local boundaries (DST days have 23 or 25 hourly buckets, +5:30 zones start
days at local midnight), gaps are zeros, and the series adds up to the summary. Checked
against an independent computation with Python's zoneinfo over the inserted rows."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import make_row

pytest_plugins = ["tests.access_fixtures"]
pytestmark = pytest.mark.django_db(databases=["default", "clickhouse"])

URL = "/gateway/blocking-stats"
P1 = uuid.UUID("11111111-1111-1111-1111-111111111111")


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def local_bucket(instant: datetime, zone: ZoneInfo, bucket: str) -> datetime:
    """Start of the local hour or day holding ``instant`` (independent of ClickHouse), as a
    UTC instant: aware datetimes sharing a tzinfo compare by wall time, which would merge
    the two 02:00 hours of a day the clocks go back."""
    local = instant.astimezone(zone)
    if bucket == "1h":
        return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    return datetime(local.year, local.month, local.day, tzinfo=zone).astimezone(UTC)


def rows_between(start: datetime, end: datetime, step: timedelta) -> list[dict]:
    """One row per ``step``, every third one blocked, and three hours without traffic
    starting five hours in (a gap to fill with zeros)."""
    rows, at, index = [], start, 0
    gap = (start + timedelta(hours=5), start + timedelta(hours=8))
    while at < end:
        if not gap[0] <= at < gap[1]:
            rows.append(
                make_row(
                    timestamp=at,
                    project_id=P1,
                    is_blocked=index % 3 == 0,
                    client_ip=f"198.51.100.{index % 5}",
                    block_reason="ip_blocked" if index % 3 == 0 else "",
                )
            )
        at += step
        index += 1
    return rows


def expected_series(rows: list[dict], zone: ZoneInfo, bucket: str) -> Counter:
    return Counter(local_bucket(r["timestamp"], zone, bucket) for r in rows)


@pytest.mark.parametrize(
    ("zone_name", "local_day", "hours"),
    [
        ("Europe/Berlin", datetime(2024, 10, 27), 25),  # clocks go back: 02:00 twice
        ("Europe/Berlin", datetime(2024, 3, 31), 23),  # clocks go forward: no 02:00
        ("Asia/Kolkata", datetime(2024, 3, 31), 24),  # +5:30, no DST
    ],
)
def test_hourly_buckets_follow_the_local_clock_and_add_up_to_the_summary(
    superuser_client, clickhouse, zone_name, local_day, hours
):
    zone = ZoneInfo(zone_name)
    start = local_day.replace(tzinfo=zone).astimezone(UTC)
    end = (local_day + timedelta(days=1)).replace(tzinfo=zone).astimezone(UTC)
    rows = rows_between(start - timedelta(hours=2), end + timedelta(hours=2), timedelta(minutes=20))
    clickhouse(rows)
    response = superuser_client.get(
        URL,
        {
            "start_time": iso(start),
            "end_time": iso(end),
            "time_bucket": "1h",
            "timezone": zone_name,
        },
    )
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    series = data["time_series"]
    assert len(series) == hours
    in_range = [r for r in rows if start <= r["timestamp"] < end]
    expected = expected_series(in_range, zone, "1h")
    blocked = expected_series([r for r in in_range if r["is_blocked"]], zone, "1h")
    for point in series:
        stamp = datetime.fromisoformat(point["timestamp"])
        assert stamp.utcoffset() == stamp.astimezone(zone).utcoffset()  # written in local time
        key = stamp.astimezone(UTC)
        assert point["total_requests"] == expected.get(key, 0), point
        assert point["blocked_requests"] == blocked.get(key, 0), point
    assert any(point["total_requests"] == 0 for point in series)  # gaps are filled with zeros
    summary = data["summary"]
    assert sum(p["total_requests"] for p in series) == summary["total_requests"] == len(in_range)
    assert sum(p["blocked_requests"] for p in series) == summary["total_blocked"]
    assert series[0]["timestamp"] == start.astimezone(zone).isoformat()


def test_the_repeated_hour_of_a_dst_day_is_two_buckets(superuser_client, clickhouse):
    zone = ZoneInfo("Europe/Berlin")
    first = datetime(2024, 10, 27, 0, 30, tzinfo=UTC)  # 02:30 CEST
    second = datetime(2024, 10, 27, 1, 30, tzinfo=UTC)  # 02:30 CET, an hour later
    clickhouse(
        [make_row(timestamp=first, project_id=P1), make_row(timestamp=second, project_id=P1)]
    )
    response = superuser_client.get(
        URL,
        {
            "start_time": "2024-10-26T22:00:00Z",
            "end_time": "2024-10-27T23:00:00Z",
            "time_bucket": "1h",
            "timezone": "Europe/Berlin",
        },
    )
    series = response.json()["data"]["time_series"]
    busy = [(p["timestamp"], p["total_requests"]) for p in series if p["total_requests"]]
    assert busy == [("2024-10-27T02:00:00+02:00", 1), ("2024-10-27T02:00:00+01:00", 1)]
    assert all(datetime.fromisoformat(t).astimezone(zone) for t, _ in busy)


def test_daily_buckets_start_at_local_midnight_in_a_half_hour_zone(superuser_client, clickhouse):
    zone = ZoneInfo("Asia/Kolkata")
    start = datetime(2024, 3, 1, tzinfo=zone).astimezone(UTC)
    end = datetime(2024, 3, 4, tzinfo=zone).astimezone(UTC)
    rows = rows_between(start, end, timedelta(minutes=47))
    clickhouse(rows)
    response = superuser_client.get(
        URL,
        {
            "start_time": iso(start),
            "end_time": iso(end),
            "time_bucket": "1d",
            "timezone": "Asia/Kolkata",
        },
    )
    series = response.json()["data"]["time_series"]
    assert [p["timestamp"] for p in series] == [
        "2024-03-01T00:00:00+05:30",
        "2024-03-02T00:00:00+05:30",
        "2024-03-03T00:00:00+05:30",
    ]
    expected = expected_series(rows, zone, "1d")
    assert [p["total_requests"] for p in series] == [
        expected[datetime.fromisoformat(p["timestamp"]).astimezone(UTC)] for p in series
    ]


def test_utc_answers_keep_their_z_timestamps_and_auto_picks_a_bucket(superuser_client, clickhouse):
    response = superuser_client.get(
        URL,
        {
            "start_time": "2025-01-15T00:00:00Z",
            "end_time": "2025-01-16T00:00:00Z",
            "time_bucket": "auto",
        },
    )
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["time_bucket"] == "5m"  # 288 points: the finest bucket within 300
    assert len(data["time_series"]) == 288
    assert data["time_series"][0]["timestamp"] == "2025-01-15T00:00:00Z"


def test_an_unknown_zone_is_a_400_naming_the_field(superuser_client):
    response = superuser_client.get(URL, {"timezone": "Mars/Olympus"})
    assert response.status_code == 400
    assert "timezone" in response.json()["error"]["details"]
