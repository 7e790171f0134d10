"""gunicorn settings for ``make serve`` (README "Serving").

The worker model follows where ClickHouse lives:

- ``CLICKHOUSE_HOST`` set (an HTTP ClickHouse server): ``WEB_WORKERS`` processes (default
  2 x CPUs + 1), each with ``WEB_THREADS`` threads (default 4). Run Celery worker and beat
  as their own processes.
- embedded chDB (``CLICKHOUSE_HOST`` empty): ONE process, since chDB opens its data
  directory in one process only; concurrency comes from ``WEB_THREADS`` threads (default
  8), and the beat schedule runs on a thread in that process (``INPROCESS_JOBS``).

Prometheus multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` (default ``var/prometheus``) is
emptied when the server starts, each process writes its samples there, a dead worker's
files are marked, and ``/metrics`` on any worker sums them all (``budmetrics_site/metrics``).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)
env = environ.Env()


def _whole(variable: str, default: int, minimum: int = 1) -> int:
    raw = env.str(variable, default=str(default)).strip()
    if not raw.isdigit() or int(raw) < minimum:
        sys.stderr.write(
            f"Configuration error: {variable} must be a whole number >= {minimum}, got {raw!r}\n"
        )
        raise SystemExit(2)
    return int(raw)


EMBEDDED = not env.str("CLICKHOUSE_HOST", default="").strip()

if EMBEDDED:
    workers = _whole("WEB_WORKERS", 1)
    if workers != 1:
        sys.stderr.write(
            "Configuration error: WEB_WORKERS must be 1 with embedded chDB (CLICKHOUSE_HOST "
            f"empty): chDB opens its data directory in one process only, got {workers}. "
            "Use WEB_THREADS for concurrency.\n"
        )
        raise SystemExit(2)
    threads = _whole("WEB_THREADS", 8)
    os.environ.setdefault("INPROCESS_JOBS", "true")
else:
    workers = _whole("WEB_WORKERS", 2 * multiprocessing.cpu_count() + 1)
    threads = _whole("WEB_THREADS", 4)

worker_class = "gthread"
bind = [f"{env.str('HOST', default='127.0.0.1')}:{_whole('PORT', 8000)}"]
wsgi_app = "budmetrics_site.wsgi:application"
# A request may run a query up to QUERY_TIMEOUT; the worker must outlive it.
timeout = _whole("QUERY_TIMEOUT", 30) + 30
graceful_timeout = 30
keepalive = 5
# Each worker imports the app itself: chDB and connection pools are opened after the fork.
preload_app = False
accesslog = None  # the app logs each request (structlog); Prometheus counts them
# gunicorn's control socket is one path per user ($HOME/.gunicorn/gunicorn.ctl): two servers
# on one machine would fight over it, and nothing here uses it.
control_socket_disable = True

PROMETHEUS_DIR = Path(
    env.str("PROMETHEUS_MULTIPROC_DIR", default=str(BASE_DIR / "var" / "prometheus")).strip()
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(PROMETHEUS_DIR)  # inherited by the workers


def on_starting(server: Any) -> None:
    """Counts from a previous run would be summed into this one's: start empty."""
    shutil.rmtree(PROMETHEUS_DIR, ignore_errors=True)
    PROMETHEUS_DIR.mkdir(parents=True, exist_ok=True)
    server.log.info(
        "BudMetrics: %s worker(s) x %s threads (%s), metrics in %s",
        workers,
        threads,
        "embedded chDB" if EMBEDDED else "ClickHouse server",
        PROMETHEUS_DIR,
    )


def child_exit(server: Any, worker: Any) -> None:
    """A dead worker's live gauges must not be summed any more (counters are kept)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, str(PROMETHEUS_DIR))
