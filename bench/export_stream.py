"""Benchmark streaming exports: ``GET /gateway/requests?format=csv|ndjson`` through a real
server process against clickhouse-connect alone streaming the same query to /dev/null.

    .venv/bin/python bench/export_stream.py --rows 5000000 --sizes 1000000 5000000

Three processes take turns on one throw-away embedded chDB directory (chDB allows one
process per directory): ``prepare`` migrates, generates ``--rows`` demo rows (30 days, 5
projects, seed 42) and creates an all-projects API key; ``baseline`` prints the very SQL
the export runs (``analytics.requests_log.queries.log_select`` through the planner and
printer, for the same fields, range and LIMIT) and streams it with clickhouse-connect's
``query_row_block_stream`` under the same read settings, discarding the rows; ``serve`` is
``manage.py runserver --noreload`` (Django's WSGI server, the whole stack: middleware,
API-key auth, validation, scope, the audit). This process then downloads each export over
HTTP in 1 MiB reads to /dev/null, counting lines, while a thread samples the server's
VmRSS every 20 ms: RSS growth = the peak during the download minus the RSS just before.
A warm-up export (10,000 rows of each format) runs first, so the engine's own start-up is
not counted as growth. Targets: growth < 100 MB whatever the size, and API rows/s >= 50 %
of clickhouse-connect alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent
FIELDS = (
    "request_id,timestamp,project_id,model_name,client_id,client_ip,country_code,method,"
    "path,status_code,response_time_ms,total_tokens,cost"
)
TARGET_GROWTH_MB = 100.0
TARGET_RATIO = 0.5


def _env(work_dir: str, max_rows: int) -> dict[str, str]:
    return {
        **os.environ,
        "CLICKHOUSE_EMBEDDED_PATH": os.path.join(work_dir, "chdb"),
        "CLICKHOUSE_HOST": "",
        "CLICKHOUSE_RETENTION_DAYS": "7300",
        "DATABASE_URL": f"sqlite:///{os.path.join(work_dir, 'db.sqlite3')}",
        "REDIS_URL": "",
        "API_THROTTLE_RATE": "off",
        "CACHE_ENABLED": "false",
        "LOG_QUERIES": "false",
        "DEBUG_MODE": "false",
        "INPROCESS_JOBS": "false",
        "MAX_EXPORT_ROWS": str(max_rows),
        "QUERY_TIMEOUT": "3600",
        "DJANGO_SETTINGS_MODULE": "budmetrics_site.settings",
    }


def _setup() -> None:
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


def _window(end: datetime) -> dict[str, str]:
    start = end - timedelta(days=31)
    return {
        "start_time": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end_time": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


# --- roles (each its own process) ---------------------------------------------------------


def role_prepare(work_dir: str, rows: int) -> None:
    _setup()
    from django.core.management import call_command

    from analytics.access.models import ApiClient

    call_command("migrate", verbosity=0)
    call_command("migrate", database="clickhouse", verbosity=0)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    started = time.perf_counter()
    call_command(
        "generate_traffic",
        rows=rows,
        days=30,
        projects=5,
        seed=42,
        end=end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        verbosity=0,
    )
    seconds = time.perf_counter() - started
    _, key = ApiClient.create_with_key(name="bench-export", all_projects=True)
    Path(work_dir, "prepare.json").write_text(
        json.dumps({"key": key, "end": end.isoformat(), "generate_seconds": seconds})
    )


def role_baseline(work_dir: str, size: int) -> None:
    _setup()
    from analytics.query.planner import plan
    from analytics.query.printer import print_plan
    from analytics.query.scope import ProjectScope
    from analytics.requests_log.queries import RequestLogQuery, log_select
    from budmetrics_site.clickhouse.client import get_client, read_settings

    prepared = json.loads(Path(work_dir, "prepare.json").read_text())
    end = datetime.fromisoformat(prepared["end"])
    window = _window(end)
    query = RequestLogQuery(
        scope=ProjectScope.all_projects(),
        start=datetime.fromisoformat(window["start_time"].replace("Z", "+00:00")),
        end=end,
        fields=tuple(FIELDS.split(",")),
    )
    # The engine's share of the server's RSS growth: the export's own sliced stream
    # (analytics.requests_log.queries.stream_rows), blocks discarded, no Django, no
    # encoding, measured the way the driver measures the server (peak - before).
    from analytics.requests_log.queries import stream_rows

    for warm in stream_rows(query, 10_000):
        del warm
    before = _rss_mib(os.getpid())
    sampler = RssSampler(os.getpid())
    sampler.start()
    streamed = 0
    for block in stream_rows(query, size):
        streamed += len(block)
    sampler.stop.set()
    sampler.join()
    printed = print_plan(plan(log_select(query, size + 1)))
    client = get_client()
    count = 0
    started = time.perf_counter()
    with (
        client.query_row_block_stream(
            printed.sql, parameters=printed.params, settings=read_settings()
        ) as stream,
        open(os.devnull, "w") as sink,
    ):
        for block in stream:
            count += len(block)
            sink.write("")  # the rows go nowhere: decoding them is the cost measured
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "rows": min(count, size),
                "seconds": seconds,
                "engine_growth": max(sampler.peak - before, 0.0),
                "engine_rows": min(streamed, size),
            }
        )
    )


# --- the driver ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, _rss_mib(self.pid))
            self.stop.wait(0.02)


def _download(url: str, key: str) -> tuple[int, float]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})  # noqa: S310 - http to 127.0.0.1
    lines = 0
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=3600) as response, open(os.devnull, "wb") as sink:  # noqa: S310 - our own server on 127.0.0.1
        if response.status != 200:
            raise SystemExit(f"export answered {response.status}")
        while True:
            chunk = response.read(1 << 20)
            if not chunk:
                break
            lines += chunk.count(b"\n")
            sink.write(chunk)
    return lines, time.perf_counter() - started


def _export(port: int, pid: int, key: str, window: dict[str, str], fmt: str, size: int) -> dict:
    params = {**window, "fields": FIELDS, "format": fmt, "limit": str(size)}
    url = f"http://127.0.0.1:{port}/gateway/requests?{urlencode(params)}"
    before = _rss_mib(pid)
    sampler = RssSampler(pid)
    sampler.start()
    lines, seconds = _download(url, key)
    sampler.stop.set()
    sampler.join()
    rows = lines - (1 if fmt == "csv" else 0)
    if rows != size:
        raise SystemExit(f"{fmt} export of {size} rows returned {rows}")
    return {"rows": rows, "seconds": seconds, "growth": max(sampler.peak - before, 0.0)}


def _wait_ready(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the server exited during start-up")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("the server did not start")


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    return "\n".join([line, rule, *body])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000, help="rows in the table")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000], help="rows exported"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="export each size and format this many times (round 2+: the engine's caches "
        "are already grown)",
    )
    parser.add_argument("--role", choices=["prepare", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--work-dir", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "prepare":
        role_prepare(args.work_dir, args.rows)
        return 0
    if args.role == "baseline":
        role_baseline(args.work_dir, args.size)
        return 0

    # bench/run.py passes one --rows to every script: sizes beyond it shrink to it.
    sizes = sorted({min(size, args.rows) for size in args.sizes})
    work_dir = tempfile.mkdtemp(prefix="budmetrics-bench-export-")
    env = _env(work_dir, max(sizes))
    me = [sys.executable, str(Path(__file__).resolve())]
    server = None
    try:
        subprocess.run(  # noqa: S603 - this interpreter on this script
            [*me, "--role", "prepare", "--work-dir", work_dir, "--rows", str(args.rows)],
            env=env,
            check=True,
        )
        prepared = json.loads(Path(work_dir, "prepare.json").read_text())
        window = _window(datetime.fromisoformat(prepared["end"]))
        baseline = {}
        for size in sizes:
            out = subprocess.run(  # noqa: S603
                [*me, "--role", "baseline", "--work-dir", work_dir, "--size", str(size)],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            baseline[size] = json.loads(out.strip().splitlines()[-1])

        port = _free_port()
        server = subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                str(REPO / "manage.py"),
                "runserver",
                "--noreload",
                f"127.0.0.1:{port}",
            ],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_ready(port, server)
        for fmt in ("csv", "ndjson"):  # warm-up: the engine opens, caches fill
            _export(port, server.pid, prepared["key"], window, fmt, 10_000)
        results = []
        for round_no in range(1, args.rounds + 1):
            for size in sizes:
                for fmt in ("csv", "ndjson"):
                    measured = _export(port, server.pid, prepared["key"], window, fmt, size)
                    results.append((round_no, size, fmt, measured))
        rss_end = _rss_mib(server.pid)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(work_dir, ignore_errors=True)

    rows = []
    for round_no, size, fmt, measured in results:
        api_rate = measured["rows"] / measured["seconds"]
        base = baseline[size]
        base_rate = base["rows"] / base["seconds"]
        ratio = api_rate / base_rate
        growth = measured["growth"]
        rows.append(
            [
                str(round_no),
                f"{size:,}",
                fmt,
                f"{measured['seconds']:.1f}",
                f"{api_rate:,.0f}",
                f"{base_rate:,.0f}",
                f"{ratio:.2f} {'ok' if ratio >= TARGET_RATIO else 'MISSED'}",
                f"{growth:.1f} {'ok' if growth < TARGET_GROWTH_MB else 'MISSED'}",
            ]
        )
    print(f"\nStreaming export, {args.rows:,} rows in the table, fields: {FIELDS}")
    print(
        _table(
            [
                "round",
                "rows exported",
                "format",
                "API s",
                "API rows/s",
                "clickhouse-connect rows/s",
                "ratio (>= 0.5)",
                "server RSS growth MiB (< 100)",
            ],
            rows,
        )
    )
    for size in sizes:
        base = baseline[size]
        print(
            f"engine alone (the export's sliced stream, blocks discarded, no Django): "
            f"{base['engine_rows']:,} rows, RSS growth {base['engine_growth']:.1f} MiB"
        )
    load = os.getloadavg()
    print(
        f"\nmachine: {os.cpu_count()} CPUs, {platform.platform()}, Python "
        f"{platform.python_version()}; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; "
        f"generation {prepared['generate_seconds']:.1f} s; server RSS at the end {rss_end:.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
