"""Writes query-audit rows off the request path.

``AUDIT_WRITE_MODE=batched`` (the default) queues each row in memory and a daemon thread
bulk-inserts the queue every ``AUDIT_FLUSH_SECONDS`` or when ``AUDIT_BATCH_SIZE`` rows are
waiting; what is queued at exit is flushed then. A commit per request (1-15 ms, most of a
cache hit) becomes one commit per batch. ``sync`` inserts inside the request (tests use it
so an audit row exists as soon as the response does). Rows are stamped when the request
ends, not when they are written.
"""

from __future__ import annotations

import atexit
import threading
from typing import Any

import structlog
from django.conf import settings
from django.db import connection

logger = structlog.get_logger(__name__)


class AuditWriter:
    def __init__(self) -> None:
        self._rows: list[Any] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, row: Any) -> None:
        if settings.AUDIT_WRITE_MODE == "sync":
            row.save(force_insert=True)
            return
        with self._lock:
            self._rows.append(row)
            pending = len(self._rows)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="budmetrics-audit", daemon=True
                )
                self._thread.start()
        if pending >= settings.AUDIT_BATCH_SIZE:
            self._wake.set()

    def pending(self) -> int:
        with self._lock:
            return len(self._rows)

    def flush(self) -> int:
        """Write everything queued now; returns how many rows."""
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return 0
        from analytics.access.models import QueryAudit

        try:
            QueryAudit.objects.bulk_create(rows, batch_size=500)
        except Exception as exc:  # noqa: BLE001 - losing audit rows must be loud, not fatal
            logger.error("audit_flush_failed", rows=len(rows), error=str(exc)[:300])
            return 0
        return len(rows)

    def _run(self) -> None:
        while True:
            self._wake.wait(settings.AUDIT_FLUSH_SECONDS)
            self._wake.clear()
            try:
                self.flush()
            finally:
                # At most one write a second: a fresh connection each time costs little and
                # never leaves an idle session holding the database.
                connection.close()


writer = AuditWriter()
atexit.register(writer.flush)
