"""Benchmark rollups (issue 11): every request of the issue's list from the rollups vs forced
raw, insert throughput with and without the views, rollup storage, as the data grows.

    .venv/bin/python bench/rollups.py --rows 10000000,30000000 --repeat 5

In a throw-away embedded chDB directory it first times ``generate_traffic`` of
``--insert-rows`` rows with the rollup views attached and, on an emptied table, without
them (views dropped, then re-created). Then, for each size of ``--rows`` (a comma list,
ascending), it writes rows over ``--days`` days (5 projects, seed 42, views attached) up to
that size (each step adds new rows, numbered from the rows already written, over the
whole window: ``generate_traffic --first-row``), waits for merges, and measures:

* the overview request, 90 days (ending 7 minutes after the last whole hour: an unaligned
  edge), 1d buckets, zone Asia/Kolkata, total_requests, error_rate, avg_response_time,
  p95_response_time, total_tokens, total_cost, grouped by model_name, top 5 + other;
* 30-day (same end) ``GET`` geographical-stats, top-routes, client-analytics and
  blocking-stats (``time_bucket=1d``);

each answered as usual and with ``exact`` (``"exact": true`` in the body, ``?exact=true``
in the query string: raw rows), the median of ``--repeat`` interleaved calls after one
warm-up each, cache off; with ``meta.source`` of each. A request the API does not answer
(e.g. ``exact`` on an endpoint that does not take it yet) prints ``n/a`` and the reason
under the table; the run goes on. The overview's rollup answer must agree with the raw one
(counts and tokens exactly, cost to 1e-9, p95 within its bound). Storage: rows and bytes on
disk (active parts) of the raw table and of every rollup in ``ROLLUPS``, before and after
``OPTIMIZE FINAL`` of the rollups. One table, a column per size.
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ANALYTICS_URL = "/gateway/analytics"
ENDPOINT_DAYS = 30
PROJECTS = 5
SEED = 42


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def overview(end: datetime, days: int) -> dict[str, Any]:
    return {
        "start_time": _iso(end - timedelta(days=days)),
        "end_time": _iso(end),
        "time_bucket": "1d",
        "timezone": "Asia/Kolkata",
        "metrics": [
            "total_requests",
            "error_rate",
            "avg_response_time",
            "p95_response_time",
            "total_tokens",
            "total_cost",
        ],
        "group_by": ["model_name"],
        "top_n": 5,
        "include_other": True,
    }


def _setup_django(work_dir: str) -> None:
    os.environ["CLICKHOUSE_EMBEDDED_PATH"] = os.path.join(work_dir, "chdb")
    os.environ["CLICKHOUSE_HOST"] = ""  # always the embedded engine
    os.environ["CLICKHOUSE_RETENTION_DAYS"] = "7300"
    os.environ["DATABASE_URL"] = f"sqlite:///{os.path.join(work_dir, 'db.sqlite3')}"
    os.environ["REDIS_URL"] = ""
    os.environ["LOG_QUERIES"] = "false"
    os.environ["DEBUG_MODE"] = "false"
    os.environ["CACHE_ENABLED"] = "false"
    os.environ["API_THROTTLE_RATE"] = "off"
    os.environ["API_PROJECT_THROTTLE_RATE"] = "off"
    # generate_traffic runs under QUERY_TIMEOUT too: a 100k-row batch with every view
    # attached on a busy 2-core machine may pass the 30 s default.
    os.environ.setdefault("QUERY_TIMEOUT", "900")
    os.environ["DJANGO_SETTINGS_MODULE"] = "budmetrics_site.settings"
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


def _silence_logs() -> None:
    """Log records (one audit line per request) are still formatted but written nowhere."""
    import logging

    sink = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sink)


def _generate(rows: int, days: int, end: datetime, seed: int, first_row: int = 0) -> float:
    from django.core.management import call_command

    started = time.perf_counter()
    call_command(
        "generate_traffic",
        rows=rows,
        days=days,
        projects=PROJECTS,
        seed=seed,
        end=_iso(end),
        first_row=first_row,
        verbosity=0,
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    return time.perf_counter() - started


def get_data(api: Any, url: str, params: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """One timed GET through the whole Django stack: (ms, the answer's ``data``)."""
    started = time.perf_counter()
    response = api.get(url, params)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise SystemExit(f"{url} answered {response.status_code}: {response.content[:500]!r}")
    return elapsed, response.json()["data"]


def _truncate_all(client: Any) -> None:
    from analytics.query.registry import TABLE
    from analytics.query.rollups import ROLLUPS

    client.command(f"TRUNCATE TABLE {TABLE}")
    for rollup in ROLLUPS.values():
        client.command(f"TRUNCATE TABLE {rollup.table}")


def insert_throughput(client: Any, rows: int, days: int, end: datetime) -> tuple[float, float]:
    """Seconds to generate ``rows`` with the views attached, then without them."""
    from django.conf import settings

    from analytics import schema
    from analytics.query.rollups import ROLLUPS

    options = schema.current_options()
    with_views = _generate(rows, days, end, seed=7)
    _truncate_all(client)
    for rollup in ROLLUPS.values():
        client.command(f"DROP VIEW {schema.rollup_view_name(rollup)}")
    try:
        without_views = _generate(rows, days, end, seed=7)
    finally:
        for rollup in ROLLUPS.values():
            for statement in schema.create_rollup_statements(
                options, rollup, settings.ROLLUP_RETENTION_DAYS
            ):
                client.command(statement)
    _truncate_all(client)
    return with_views, without_views


def storage(client: Any) -> list[tuple[str, int, int]]:
    """(table, rows, bytes on disk) of the raw table and each rollup, active parts."""
    from analytics.query.registry import TABLE
    from analytics.query.rollups import ROLLUPS

    out = []
    for table in (TABLE, *(r.table for r in ROLLUPS.values())):
        rows, size = client.query(
            "SELECT sum(rows), sum(bytes_on_disk) FROM system.parts "
            "WHERE active AND database = currentDatabase() AND table = {t:String}",
            parameters={"t": table},
        ).result_rows[0]
        out.append((table, int(rows), int(size)))
    return out


def wait_for_merges(client: Any, timeout: float = 600.0) -> None:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if not client.query("SELECT count() FROM system.merges").result_rows[0][0]:
            return
        time.sleep(0.5)


def check_agree(rolled: dict[str, Any], raw: dict[str, Any]) -> None:
    """The rollup answer equals the raw one (exact metrics) or is within the p95 bound."""
    pairs = list(zip(rolled["time_series"], raw["time_series"], strict=True))
    pairs.append(({"metrics": rolled["summary"]}, {"metrics": raw["summary"]}))
    for a, b in pairs:
        for name, value in b["metrics"].items():
            got = a["metrics"][name]
            if value is None or name == "p95_response_time":
                assert (got is None) == (value is None), name
                if value is not None:
                    assert got <= value * 1.01 + 1, (name, got, value)
            elif isinstance(value, float):
                assert abs(got - value) <= 1e-9 * max(abs(value), 1e-12), (name, got, value)
            else:
                assert got == value, (name, got, value)


# --- the requests -------------------------------------------------------------------------


@dataclass
class Case:
    """One request of the issue's list, asked as usual and forced to raw rows."""

    name: str
    usual: Callable[[], Any]  # -> the test client's response
    exact: Callable[[], Any]
    usual_ms: list[float] = field(default_factory=list)
    exact_ms: list[float] = field(default_factory=list)
    usual_source: str = ""
    exact_source: str = ""
    problems: list[str] = field(default_factory=list)  # why a side is n/a
    failed: set[str] = field(default_factory=set)  # "usual" / "exact": not measured

    def ask(self, side: str) -> tuple[float, dict[str, Any] | None]:
        """(ms, body) of one call; body None (and the reason kept once) if not a 200."""
        call = self.usual if side == "usual" else self.exact
        started = time.perf_counter()
        response = call()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            if side not in self.failed:
                self.failed.add(side)
                self.problems.append(
                    f"{self.name} ({side}): HTTP {response.status_code} "
                    f"{response.content[:200].decode(errors='replace')}"
                )
            return elapsed, None
        return elapsed, response.json()


def _source(body: dict[str, Any]) -> str:
    """``meta.source``: in ``data.meta`` (every data endpoint), else the top-level meta."""
    data = body.get("data")
    meta = data.get("meta") if isinstance(data, dict) else None
    if not isinstance(meta, dict) or "source" not in meta:
        meta = body.get("meta") or {}
    return str(meta.get("source", "-"))


def cases(api: Any, end: datetime, days: int) -> list[Case]:
    """The overview (POST) and the four 30-day GET endpoints, as a superuser asks them."""
    body = overview(end, days)
    window = {
        "start_time": _iso(end - timedelta(days=ENDPOINT_DAYS)),
        "end_time": _iso(end),
    }

    def post(payload: dict[str, Any]) -> Callable[[], Any]:
        return lambda: api.post(ANALYTICS_URL, payload, format="json")

    def get(url: str, params: dict[str, str]) -> Callable[[], Any]:
        return lambda: api.get(url, params)

    out = [
        Case(
            f"overview {days}d/1d Kolkata top5+other",
            post(body),
            post({**body, "exact": True}),
        )
    ]
    for name, url, extra in (
        ("geographical-stats", "/gateway/geographical-stats", {}),
        ("top-routes", "/gateway/top-routes", {}),
        ("client-analytics", "/gateway/client-analytics", {}),
        ("blocking-stats", "/gateway/blocking-stats", {"time_bucket": "1d"}),
    ):
        params = {**window, **extra}
        out.append(
            Case(
                f"{name} {ENDPOINT_DAYS}d",
                get(url, params),
                get(url, {**params, "exact": "true"}),
            )
        )
    return out


def measure(api: Any, end: datetime, days: int, repeat: int) -> list[Case]:
    """Warm up each side of each case, check the overview's agreement, then ``repeat``
    rounds over every case, usual and exact interleaved."""
    measured = cases(api, end, days)
    for case in measured:
        _, usual = case.ask("usual")
        _, exact = case.ask("exact")
        case.usual_source = _source(usual) if usual else "n/a"
        case.exact_source = _source(exact) if exact else "n/a"
    overview_case = measured[0]
    _, rolled = overview_case.ask("usual")
    _, raw = overview_case.ask("exact")
    if rolled is None or raw is None:
        raise SystemExit(f"the overview was not answered: {overview_case.problems}")
    assert rolled["data"]["meta"]["source"] != "raw", rolled["data"]["meta"]
    assert raw["data"]["meta"]["source"] == "raw", raw["data"]["meta"]
    check_agree(rolled["data"], raw["data"])
    for _ in range(repeat):
        for case in measured:
            for side, samples in (("usual", case.usual_ms), ("exact", case.exact_ms)):
                if side in case.failed:
                    continue
                elapsed, answered = case.ask(side)
                if answered is not None:
                    samples.append(elapsed)
    return measured


# --- one size -----------------------------------------------------------------------------


@dataclass
class SizeResult:
    rows: int
    generate_rows: int
    generate_seconds: float
    unmerged: list[tuple[str, int, int]]
    merged: list[tuple[str, int, int]]
    optimize_seconds: float
    cases: list[Case]
    load: float


def _grow_and_measure(
    client: Any, api: Any, size: int, written: int, args: argparse.Namespace, data_end: datetime
) -> SizeResult:
    from analytics.query.rollups import ROLLUPS

    added = size - written
    seconds = _generate(added, args.days, data_end, seed=SEED, first_row=written)
    wait_for_merges(client)
    unmerged = storage(client)
    # The steady state: background merges collapse a bucket's rows from several inserts
    # into one per key.
    started = time.perf_counter()
    for rollup in ROLLUPS.values():
        client.command(f"OPTIMIZE TABLE {rollup.table} FINAL")
    optimize_seconds = time.perf_counter() - started
    merged = storage(client)
    end = data_end + timedelta(minutes=7) - timedelta(hours=1)
    measured = measure(api, end, args.days, args.repeat)
    return SizeResult(
        size, added, seconds, unmerged, merged, optimize_seconds, measured, os.getloadavg()[0]
    )


# --- the table ----------------------------------------------------------------------------


def _ms(samples: list[float]) -> str:
    return f"{statistics.median(samples):.1f}" if samples else "n/a"


def _speed_up(case: Case) -> str:
    if not case.usual_ms or not case.exact_ms:
        return "n/a"
    return f"{statistics.median(case.exact_ms) / statistics.median(case.usual_ms):.1f}x"


def table_rows(results: list[SizeResult]) -> list[list[str]]:
    """The measures (rows of the table) with one value per size."""
    out: list[list[str]] = []

    def line(label: str, value: Callable[[SizeResult], str]) -> None:
        out.append([label, *(value(r) for r in results)])

    for index, case in enumerate(results[0].cases):
        name = case.name
        line(f"{name}: usual (ms)", lambda r, i=index: _ms(r.cases[i].usual_ms))
        line(f"{name}: exact (raw) (ms)", lambda r, i=index: _ms(r.cases[i].exact_ms))
        line(f"{name}: speed-up (exact / usual)", lambda r, i=index: _speed_up(r.cases[i]))
        line(
            f"{name}: meta.source usual / exact",
            lambda r, i=index: f"{r.cases[i].usual_source} / {r.cases[i].exact_source}",
        )
    line(
        "generate this step with views (rows, s)",
        lambda r: f"{r.generate_rows:,} in {r.generate_seconds:.1f}",
    )
    line("generate this step (rows/s)", lambda r: f"{r.generate_rows / r.generate_seconds:,.0f}")
    tables = [table for table, _, _ in results[0].merged]
    for position, table in enumerate(tables):
        if position == 0:
            line(
                f"{table} (raw): rows / bytes on disk",
                lambda r: f"{r.merged[0][1]:,} / {r.merged[0][2]:,}",
            )
            continue

        def merged(r: SizeResult, p: int = position) -> str:
            _, rows, size = r.merged[p]
            raw_rows, raw_bytes = r.merged[0][1], r.merged[0][2]
            return f"{rows:,} / {size:,} ({rows / raw_rows:.2%} / {size / raw_bytes:.2%} of raw)"

        line(f"{table}: rows / bytes (after OPTIMIZE FINAL)", merged)
        line(
            f"{table}: rows / bytes before OPTIMIZE FINAL",
            lambda r, p=position: f"{r.unmerged[p][1]:,} / {r.unmerged[p][2]:,}",
        )
    if len(tables) > 1:

        def total(r: SizeResult) -> str:
            rows = sum(n for _, n, _ in r.merged[1:])
            size = sum(b for _, _, b in r.merged[1:])
            raw_rows, raw_bytes = r.merged[0][1], r.merged[0][2]
            return f"{rows:,} / {size:,} ({rows / raw_rows:.2%} / {size / raw_bytes:.2%} of raw)"

        line("all rollups: rows / bytes (after OPTIMIZE FINAL)", total)
    line("OPTIMIZE FINAL of the rollups (s)", lambda r: f"{r.optimize_seconds:.1f}")
    line("load average (1 min) after measuring", lambda r: f"{r.load:.1f}")
    return out


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def _sizes(text: str) -> list[int]:
    """``--rows``: one size or an ascending comma list (``10000000,30000000``)."""
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--rows takes whole numbers, got {text!r}") from exc
    if not sizes or sizes[0] <= 0 or any(b <= a for a, b in itertools.pairwise(sizes)):
        raise argparse.ArgumentTypeError(f"--rows takes ascending positive sizes, got {text!r}")
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=_sizes, default=[10_000_000], help="size[,size...]")
    parser.add_argument("--insert-rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    work_dir = tempfile.mkdtemp(prefix="budmetrics-bench-rollups-")
    try:
        _setup_django(work_dir)
        return _run(args)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def migrated_client() -> Any:
    """Migrate both databases of the throw-away directory, quiet the logs and return the
    ClickHouse client (after ``_setup_django``)."""
    from django.core.management import call_command

    from budmetrics_site.clickhouse.client import get_client

    call_command("migrate", verbosity=0)
    call_command("migrate", database="clickhouse", verbosity=0)
    _silence_logs()
    return get_client()


def superuser_api() -> Any:
    """A DRF test client authenticated as a fresh superuser (the whole Django stack)."""
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench")
    api = APIClient()
    api.force_authenticate(user=user)
    return api


def _run(args: argparse.Namespace) -> int:
    from analytics.audit_writer import writer

    client = migrated_client()
    data_end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)

    with_views, without_views = insert_throughput(client, args.insert_rows, args.days, data_end)
    api = superuser_api()
    results, written = [], 0
    for size in args.rows:
        results.append(_grow_and_measure(client, api, size, written, args, data_end))
        written = size
        print(f"measured at {size:,} rows", file=sys.stderr, flush=True)

    print(
        f"\nRollups over {args.days} days, {PROJECTS} projects ({os.cpu_count()} CPUs; median "
        f"of {args.repeat} after 1 warm-up, usual and exact interleaved, cache off; GET "
        f"endpoints over the last {ENDPOINT_DAYS} days)"
    )
    header = ["measure", *(f"{r.rows:,} rows" for r in results)]
    blank = [""] * (len(results) - 1)
    inserts = [
        [f"insert {args.insert_rows:,} rows with views (s), once", f"{with_views:.2f}", *blank],
        [f"insert {args.insert_rows:,} rows without views (s)", f"{without_views:.2f}", *blank],
        ["insert throughput with / without views", f"{without_views / with_views:.0%}", *blank],
    ]
    print(_table(header, [*table_rows(results), *inserts]))
    writer.flush()  # the audit rows, while the throw-away database still exists
    problems = [p for r in results for case in r.cases for p in case.problems]
    if problems:
        print("\nn/a:")
        for problem in dict.fromkeys(problems):
            print(f"  {problem}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
