"""``manage.py rebuild_rollups [--since] [--until]``: backfill or repair rollups.

Materialized views only see inserts made after they exist; this recomputes a range of every
rollup from the raw rows (a tier from the finer rollup), with a progress bar. Idempotent:
the range's rollup rows are deleted (one mutation per rollup) and re-aggregated a day at a
time, so running it twice changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from analytics import schema
from analytics.query.planner import ceil_to, floor_to
from analytics.query.registry import TABLE
from analytics.query.rollups import ROLLUP_BUCKET_SECONDS, ROLLUPS
from budmetrics_site.clickhouse.client import get_client

CHUNK = timedelta(days=1)


def _iso8601(name: str, value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"--{name} must be an ISO 8601 date-time, got {value!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def rebuild(since: datetime, until: datetime, progress: Any = None) -> int:
    """Rebuild every rollup over ``[since, until)`` widened to whole 15-minute buckets
    (coarser tiers: to their whole intervals); returns the number of day-chunks done."""
    start, end = floor_to(since, ROLLUP_BUCKET_SECONDS), ceil_to(until, ROLLUP_BUCKET_SECONDS)
    client = get_client()
    options = schema.current_options()
    # ROLLUPS lists each tier after the rollup it is fed from, so a tier is rebuilt from a
    # finer rollup already complete over the tier's whole intervals touching the range.
    # One delete per rollup (a mutation: slow), then inserts a day at a time; a day is a
    # whole number of every tier's intervals, so no interval is inserted twice.
    work = []
    for rollup in ROLLUPS.values():
        # A day tier's days are local (23 to 25 hours): a chunk may end inside one, and
        # its two partial rows merge like any two rows of one key.
        low, high = rollup.floor(start), rollup.ceil(end)
        days = []
        moment = low
        while moment < high:
            days.append((moment, min(moment + CHUNK, high)))
            moment += CHUNK
        work.append((rollup, (low, high), days))
    bar = tqdm(
        total=sum(len(days) for _, _, days in work),
        unit="day",
        file=progress,
        disable=progress is None,
    )
    for rollup, (low, high), days in work:
        delete, insert = schema.rollup_rebuild_statements(options, rollup)
        client.command(delete, parameters={"start": low, "end": high})
        for a, b in days:
            bar.set_description(f"{rollup.name} {a:%Y-%m-%d}")
            client.command(insert, parameters={"start": a, "end": b})
            bar.update(1)
    bar.close()
    return len(work[0][2]) if work else 0


class Command(BaseCommand):
    help = (
        "Recompute the rollups from gateway_analytics for a range (default: every raw row "
        "up to the last whole 15 minutes): for rows inserted before the views existed, or "
        "after a rollup definition changed. Safe to run twice."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", help="start, ISO 8601 (default: the oldest raw row)")
        parser.add_argument("--until", help="end, ISO 8601 (default: now, floored to 15 minutes)")

    def handle(self, *args: Any, **options: Any) -> None:
        client = get_client()
        until = (
            _iso8601("until", options["until"])
            if options["until"]
            else floor_to(datetime.now(UTC), ROLLUP_BUCKET_SECONDS)
        )
        if options["since"]:
            since = _iso8601("since", options["since"])
        else:
            # A code constant; count() first: min() of no rows is 1970.
            found = client.query(f"SELECT count(), min(timestamp) FROM {TABLE}").result_rows  # noqa: S608
            if not found[0][0]:
                self.stdout.write("gateway_analytics has no rows; nothing to rebuild.")
                return
            since = found[0][1]
        if since >= until:
            raise CommandError(f"--since ({since.isoformat()}) must be before --until.")
        days = rebuild(since, until, progress=self.stderr._out)
        self.stdout.write(
            f"Rebuilt {', '.join(ROLLUPS)} from {since.isoformat()} to {until.isoformat()} "
            f"({days} day chunk{'s' if days != 1 else ''})."
        )
