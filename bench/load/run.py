"""Load test: ``make serve`` on loopback under a BudApp dashboard session mix (locust).

    make load LOAD_ROWS=10000000                 # the issue's size
    .venv/bin/python bench/load/run.py --rows 1000000 --users 20 --seconds 60

1. Demo rows: ``--rows`` rows (7 days, 3 projects, seed 42) in an embedded chDB directory
   ``var/load/data-<rows>``, generated once and reused by later runs.
2. Django's tables in a throw-away Postgres database (``--database-url``, created and
   dropped by this run) or, with ``--sqlite``, a SQLite file; one all-projects API key
   (BudApp's service key) and two saved queries per project.
3. For each phase a private ``redis-server`` on a free loopback port and ``make serve`` on
   another (embedded chDB: one process, ``WEB_THREADS`` threads), then locust headless with
   ``--users`` users, bounded by ``--seconds`` and ``--max-requests``:

   - ``cache on``: the response cache on that Redis;
   - ``cache off``: ``CACHE_ENABLED=false``;
   - ``redis stopped``: cache on, Redis killed halfway through the phase (answers must go
     on, uncached, with no server error).

4. Prints one table: requests, requests/s, p50/p95/p99 latency, errors (server 5xx, 429,
   other) as locust saw them, 5xx as the server's own ``/metrics`` counted them, the
   ``X-Cache`` answers (after Redis stopped, separately), and the peak RSS of the server's
   processes. Exits non-zero if any phase had an error.

Traffic only goes to 127.0.0.1; every process it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"

SETUP = """
import json
from datetime import UTC, datetime, timedelta
from analytics.query.system import active_project_ids
from analytics.access.models import ApiClient
from analytics.saved_queries import SavedQuery
client, key = ApiClient.create_with_key(name="budapp-load", all_projects=True)
# The projects with rows (the warmer's system query, over the longest window allowed).
until = datetime.now(UTC) + timedelta(days=1)
projects = sorted(str(p) for p in active_project_ids(until - timedelta(days=90), until, 100))
saved = {}
for project in projects:
    saved[project] = [
        str(SavedQuery.objects.create(
            name=f"{name} {project[:8]}", owner_client=client, endpoint=endpoint,
            params={"project_ids": [project], **params}, time_window=window,
        ).pk)
        for name, endpoint, window, params in (
            ("hourly", "analytics", "last_24h", {"time_bucket": "1h",
             "metrics": ["total_requests", "error_rate", "p95_response_time"]}),
            ("routes", "top-routes", "last_7d", {"limit": 10}),
        )
    ]
print("LOAD_SETUP " + json.dumps({"key": key, "projects": projects, "saved": saved}))
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(args: list[str], env: dict[str, str], **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, env=env, check=True, **kwargs)  # noqa: S603


def _base_env(data_dir: Path, database_url: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLICKHOUSE_", "REDIS_", "CACHE_", "DJANGO_SETTINGS"))
    }
    env.update(
        CLICKHOUSE_HOST="",
        CLICKHOUSE_EMBEDDED_PATH=str(data_dir / "chdb"),
        CLICKHOUSE_RETENTION_DAYS="7300",
        DATABASE_URL=database_url,
        DEBUG_MODE="false",
        LOG_QUERIES="false",
        JSON_LOGS="true",
    )
    return env


def ensure_rows(rows: int, work: Path) -> tuple[Path, float | None]:
    """The data directory for ``rows`` rows, generated unless a previous run left it."""
    data_dir = work / f"data-{rows}"
    if (data_dir / "complete").exists():
        return data_dir, None
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    env = _base_env(data_dir, f"sqlite:///{data_dir / 'gen.sqlite3'}")
    env["INPROCESS_JOBS"] = "false"
    python = str(BIN / "python")
    _run([python, "manage.py", "migrate", "--database", "clickhouse", "--noinput"], env)
    started = time.perf_counter()
    _run(
        [
            python,
            "manage.py",
            "generate_traffic",
            "--rows",
            str(rows),
            "--days",
            "7",
            "--projects",
            "3",
            "--seed",
            "42",
        ],
        env,
    )
    seconds = time.perf_counter() - started
    (data_dir / "complete").write_text(f"{seconds:.1f}\n")
    return data_dir, seconds


@contextmanager
def throwaway_database(url: str | None, work: Path) -> Iterator[str]:
    """A new Postgres database on the server of ``url`` (dropped afterwards), or SQLite."""
    if url is None:
        path = work / f"load-{os.getpid()}.sqlite3"
        try:
            yield f"sqlite:///{path}"
        finally:
            path.unlink(missing_ok=True)
        return
    import psycopg

    name = f"budmetrics_load_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def setup_access(env: dict[str, str]) -> dict[str, Any]:
    python = str(BIN / "python")
    _run([python, "manage.py", "migrate", "--noinput"], env, stdout=subprocess.DEVNULL)
    done = _run([python, "manage.py", "shell", "-c", SETUP], env, capture_output=True, text=True)
    line = next(x for x in done.stdout.splitlines() if x.startswith("LOAD_SETUP "))
    return json.loads(line.removeprefix("LOAD_SETUP "))


class Redis:
    def __init__(self, work: Path) -> None:
        self.port = _free_port()
        self.process = subprocess.Popen(  # noqa: S603
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(work),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5):
                return
            time.sleep(0.1)
        raise SystemExit("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as answer:  # noqa: S310
            return answer.status == 200
    except OSError:
        return False


class Server:
    """``make serve`` in its own process group, with an RSS sampler over its processes."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with log.open("wb") as out:
            self.process = subprocess.Popen(  # noqa: S603
                [
                    shutil.which("make") or "make",
                    "--no-print-directory",
                    "serve",
                    "HOST=127.0.0.1",
                    f"PORT={self.port}",
                ],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.peak_rss = 0
        self._stop = threading.Event()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"make serve exited; see {log}")
            if _healthy(self.url):
                break
            time.sleep(0.5)
        else:
            self.stop()
            raise SystemExit(f"make serve did not answer; see {log}")
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            with suppress(psutil.Error):
                processes = psutil.Process(self.process.pid).children(recursive=True)
                rss = 0
                for proc in processes:
                    with suppress(psutil.Error):
                        rss += proc.memory_info().rss
                self.peak_rss = max(self.peak_rss, rss)
            self._stop.wait(0.25)

    def server_errors(self) -> int:
        # After locust stops, the server still works off the requests it had queued (their
        # clients are gone); the scrape waits its turn behind them.
        with urllib.request.urlopen(self.url + "/metrics", timeout=300) as answer:  # noqa: S310
            text = answer.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith("gateway_analytics_http_requests_total{") and 'status="5' in line:
                total += float(line.rsplit(" ", 1)[1])
        return int(total)

    def stop(self) -> None:
        """SIGTERM to make and gunicorn; wait until every process of the group is gone,
        since the next phase's server can only open the chDB directory after that."""
        self._stop.set()
        try:
            group = [psutil.Process(self.process.pid)]
            group += group[0].children(recursive=True)
        except psutil.Error:
            group = []
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        _gone, alive = psutil.wait_procs(group, timeout=90)
        for proc in alive:
            with suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(alive, timeout=30)
        self.process.wait()


def run_locust(
    url: str, access: dict[str, Any], args: argparse.Namespace, out: Path, marker: Path
) -> dict[str, Any]:
    env = {
        **os.environ,
        "LOAD_API_KEY": access["key"],
        "LOAD_PROJECTS": ",".join(access["projects"]),
        "LOAD_SAVED": json.dumps(access["saved"]),
        "LOAD_MAX_REQUESTS": str(args.max_requests),
        "LOAD_REDIS_DOWN_MARKER": str(marker),
        "LOAD_COUNTS_FILE": str(out / "counts.json"),
        "LOAD_WAIT": args.wait,
    }
    command = [
        str(BIN / "locust"), "-f", str(LOCUSTFILE), "--headless", "--host", url,
        "-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{args.seconds}s",
        "--csv", str(out / "locust"), "--only-summary", "--stop-timeout", "10",
        "--loglevel", "WARNING", "--exit-code-on-error", "0",
    ]  # fmt: skip
    with (out / "locust.log").open("wb") as log:
        subprocess.run(  # noqa: S603
            command,
            cwd=REPO,
            env=env,
            check=True,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=args.seconds + 120,
        )
    with (out / "locust_stats.csv").open() as stats:
        total = next(row for row in csv.DictReader(stats) if row["Name"] == "Aggregated")
    failures: dict[str, int] = {}
    with (out / "locust_failures.csv").open() as rows:
        for row in csv.DictReader(rows):
            kind = row["Error"].split(" ")[0] if row["Error"] else "other"
            failures[kind] = failures.get(kind, 0) + int(row["Occurrences"])
    counts = json.loads((out / "counts.json").read_text())
    return {"stats": total, "failures": failures, "x_cache": counts["x_cache"]}


def run_phase(
    name: str,
    access: dict[str, Any],
    env: dict[str, str],
    args: argparse.Namespace,
    work: Path,
    kill_redis: bool,
) -> dict[str, Any]:
    out = work / f"phase-{name.replace(' ', '-')}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    marker = out / "redis-stopped"
    redis = Redis(out)
    server = None
    timer = None
    try:
        server_env = {**env, "REDIS_URL": redis.url, "PROMETHEUS_MULTIPROC_DIR": str(out / "prom")}
        server = Server(server_env, out / "server.log")
        if kill_redis:

            def stop_redis() -> None:
                redis.kill()
                marker.write_text(str(time.time()))

            timer = threading.Timer(args.seconds / 2, stop_redis)
            timer.start()
        result = run_locust(server.url, access, args, out, marker)
        result["server_5xx"] = server.server_errors()
        result["peak_rss_mib"] = server.peak_rss / 2**20
        result["redis_stopped"] = marker.exists()
        return result
    finally:
        if timer is not None:
            timer.cancel()
        if server is not None:
            server.stop()
        redis.kill()


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--spawn-rate", type=float, default=5)
    parser.add_argument("--seconds", type=int, default=60, help="locust run time per phase")
    parser.add_argument("--max-requests", type=int, default=30_000, help="per phase")
    parser.add_argument("--wait", default="0.2,1.0", help="think time between tasks, s: min,max")
    parser.add_argument("--threads", type=int, default=8, help="WEB_THREADS of make serve")
    parser.add_argument(
        "--database-url",
        default="postgres://postgres@127.0.0.1:5432/postgres",
        help="a Postgres server to create the throw-away database on",
    )
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of Postgres")
    parser.add_argument("--phases", default="cache on,cache off,redis stopped")
    parser.add_argument("--workdir", default=str(REPO / "var" / "load"))
    args = parser.parse_args()

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    data_dir, generated = ensure_rows(args.rows, work)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    results: list[tuple[str, dict[str, Any]]] = []
    with throwaway_database(None if args.sqlite else args.database_url, work) as database_url:
        env = _base_env(data_dir, database_url)
        env.update(WEB_THREADS=str(args.threads), AUDIT_WRITE_MODE="batched")
        access = setup_access(env)
        for name in phases:
            phase_env = {**env, "CACHE_ENABLED": "false" if name == "cache off" else "true"}
            print(f"phase {name}: {args.users} users, {args.seconds} s ...", flush=True)
            results.append(
                (
                    name,
                    run_phase(
                        name, access, phase_env, args, work, kill_redis=name == "redis stopped"
                    ),
                )
            )

    header = [
        "phase",
        "rows",
        "requests",
        "req/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "errors (5xx/429/other)",
        "server 5xx",
        "X-Cache",
        "peak RSS MiB",
    ]
    rows = []
    failed = False
    for name, result in results:
        stats, failures = result["stats"], result["failures"]
        five = failures.get("server", 0)
        throttled = failures.get("throttled", 0)
        other = sum(failures.values()) - five - throttled
        failed = failed or bool(sum(failures.values()) or result["server_5xx"])
        cache = ", ".join(f"{k} {v}" for k, v in sorted(result["x_cache"].items()))
        rows.append(
            [
                name,
                f"{args.rows:,}",
                stats["Request Count"],
                f"{float(stats['Requests/s']):.1f}",
                stats["50%"],
                stats["95%"],
                stats["99%"],
                f"{five}/{throttled}/{other}",
                str(result["server_5xx"]),
                cache,
                f"{result['peak_rss_mib']:.0f}",
            ]
        )
    print()
    print(_table(header, rows))
    print()
    load = os.getloadavg()
    origin = f"generated in {generated:.0f} s" if generated else f"of an earlier run ({data_dir})"
    print(
        f"{args.users} users (one API key, {len(access['projects'])} projects), think time "
        f"{args.wait} s, {args.seconds} s per phase, make serve: 1 process x {args.threads} "
        f"threads (embedded chDB), {os.cpu_count()} CPUs, load average {load[0]:.1f}; "
        f"rows {origin}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
