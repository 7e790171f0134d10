"""The beat schedule on a daemon thread inside the web process, for the embedded default:
chDB allows one process per data directory, so no separate worker or beat can open it.
Started by ``AnalyticsConfig.ready`` when ``INPROCESS_JOBS`` is true (``make run`` sets it)."""

from __future__ import annotations

import threading
import time

import structlog

logger = structlog.get_logger(__name__)
_started = threading.Event()


def run_due_jobs(next_run: dict[str, float], now: float) -> list[str]:
    """Run every schedule entry whose time has come (eagerly, in this process); returns
    the names run. ``next_run`` is updated in place."""
    from budmetrics_site.celery import BEAT_SCHEDULE, app

    app.loader.import_default_modules()  # registers the autodiscovered tasks
    ran = []
    for name, entry in BEAT_SCHEDULE.items():
        if now < next_run.get(name, 0.0):
            continue
        next_run[name] = now + float(entry["schedule"])
        try:
            app.tasks[entry["task"]].apply(throw=True)
            ran.append(name)
        except Exception as exc:  # noqa: BLE001 - one failed job must not stop the rest
            logger.warning("inprocess_job_failed", job=name, error=str(exc)[:200])
    return ran


def _loop(stop: threading.Event, tick: float = 5.0) -> None:
    next_run: dict[str, float] = {}
    while not stop.is_set():
        run_due_jobs(next_run, time.monotonic())
        stop.wait(tick)


def start_inprocess_scheduler() -> threading.Event | None:
    """Start once per process; returns the stop event."""
    if _started.is_set():
        return None
    _started.set()
    stop = threading.Event()
    threading.Thread(target=_loop, args=(stop,), name="budmetrics-jobs", daemon=True).start()
    logger.info("inprocess_jobs_started")
    return stop
