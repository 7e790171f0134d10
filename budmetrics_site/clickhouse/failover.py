"""Backup ClickHouse behind a circuit breaker: which server a query goes to.

When a backup is configured (``CLICKHOUSE_BACKUP_HOST`` or
``CLICKHOUSE_BACKUP_EMBEDDED_PATH``), a query whose primary cannot be *reached* —
connection refused, DNS failure, timeout while connecting — is sent to the backup instead,
and the breaker opens: for ``CLICKHOUSE_FAILOVER_COOLDOWN_SECONDS`` queries go straight to
the backup, then one query probes the primary (half-open). A probe that connects closes the
breaker; one that cannot reopens it. Errors that are the query's own fault (bad SQL, row or
memory limits, a timeout while running) come from a primary that answered: they are raised
as they are and never fail over. The breaker is per process; nothing is shared between
workers, so each finds out for itself (one failed connect each).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog
from django.conf import settings
from django.core.signals import setting_changed
from django.db import connections
from prometheus_client import Counter, Gauge
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from budmetrics_site.clickhouse.client import ALIAS, get_client
from budmetrics_site.exceptions import ServiceUnavailableError

logger = structlog.get_logger(__name__)

PRIMARY = "primary"
BACKUP = "backup"

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
_STATE_VALUE = {CLOSED: 0, OPEN: 1, HALF_OPEN: 2}

FAILOVERS = Counter(
    "gateway_analytics_clickhouse_failovers_total",
    "Queries answered by the backup ClickHouse, by why the primary was not used",
    ["reason"],  # connect_failed: tried and unreachable; breaker_open: not tried
)
BREAKER_STATE = Gauge(
    "gateway_analytics_clickhouse_breaker_state",
    "The primary ClickHouse circuit breaker: 0 closed, 1 open (backup only), 2 half-open",
)

# The clock, in one place so tests travel in time instead of sleeping.
clock: Callable[[], float] = time.monotonic

T = TypeVar("T")

_CONNECT_FAILURES = (
    ConnectionRefusedError,
    socket.gaierror,
    NameResolutionError,
    NewConnectionError,
    ConnectTimeoutError,  # urllib3's: raised while connecting, never while a query runs
)


def is_connect_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (or anything it was raised from) says the server was never reached.
    Drivers wrap the socket error several times (Django, clickhouse-connect, urllib3)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, _CONNECT_FAILURES):
            return True
        seen.add(id(current))
        reason = getattr(current, "reason", None)  # urllib3's MaxRetryError
        if isinstance(reason, BaseException) and isinstance(reason, _CONNECT_FAILURES):
            return True
        current = current.__cause__ or current.__context__
    return False


@dataclass
class Breaker:
    """Closed: use the primary. Open: use the backup until ``cooldown`` seconds have passed.
    Half-open: one caller probes the primary while the others keep using the backup."""

    cooldown: float
    state: str = CLOSED
    opened_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def allow_primary(self) -> bool:
        with self._lock:
            if self.state == CLOSED:
                return True
            # Open past its cooldown: this caller is the probe. Half-open past it too: the
            # last probe never reported (its caller died), so probe again.
            if clock() - self.opened_at >= self.cooldown:
                self.opened_at = clock()
                self._set(HALF_OPEN)
                return True
            return False

    def succeeded(self) -> None:
        with self._lock:
            if self.state != CLOSED:
                logger.info("clickhouse_primary_back", previous=self.state)
            self._set(CLOSED)

    def failed(self) -> None:
        with self._lock:
            self.opened_at = clock()
            self._set(OPEN)

    def _set(self, state: str) -> None:
        self.state = state
        BREAKER_STATE.set(_STATE_VALUE[state])


@dataclass
class Route:
    """Where queries go: ``primary()`` and ``backup()`` return connected clients (or raise);
    ``backup`` is None when no backup is configured (no breaker then: the primary only)."""

    primary: Callable[[], Any]
    backup: Callable[[], Any] | None
    breaker: Breaker


def backup_settings() -> dict[str, Any] | None:
    """clickhouse-connect arguments for the configured backup, or None without one. The
    database is the primary alias' (under tests, the test database)."""
    database = connections[ALIAS].settings_dict["NAME"]
    common: dict[str, Any] = {
        "database": database,
        "settings": {"max_execution_time": settings.QUERY_TIMEOUT},
        "tz_mode": "aware",
    }
    if settings.CLICKHOUSE_BACKUP_HOST:
        return {
            **common,
            "host": settings.CLICKHOUSE_BACKUP_HOST,
            "port": settings.CLICKHOUSE_BACKUP_PORT,
            "username": settings.CLICKHOUSE_BACKUP_USER,
            "password": settings.CLICKHOUSE_BACKUP_PASSWORD,
            "secure": settings.CLICKHOUSE_BACKUP_SECURE,
            "connect_timeout": settings.CLICKHOUSE_POOL_TIMEOUT,
            "send_receive_timeout": settings.QUERY_TIMEOUT + 5,
        }
    if settings.CLICKHOUSE_BACKUP_EMBEDDED_PATH:
        return {**common, "dsn": f"chdb://{settings.CLICKHOUSE_BACKUP_EMBEDDED_PATH}"}
    return None


def lazy_client(arguments: dict[str, Any]) -> Callable[[], Any]:
    """A getter that connects on first use and keeps the client (thread-safe); a failed
    connect is retried on the next call."""
    from clickhouse_connect.driver import create_client

    lock = threading.Lock()
    holder: list[Any] = []

    def get() -> Any:
        with lock:
            if not holder:
                holder.append(create_client(**arguments))
            return holder[0]

    return get


def route_from_settings() -> Route:
    arguments = backup_settings()
    return Route(
        primary=get_client,
        backup=lazy_client(arguments) if arguments else None,
        breaker=Breaker(cooldown=settings.CLICKHOUSE_FAILOVER_COOLDOWN_SECONDS),
    )


_route: Route | None = None
_route_lock = threading.Lock()


def route() -> Route:
    """This process' route, built from settings on first use."""
    global _route
    with _route_lock:
        if _route is None:
            _route = route_from_settings()
        return _route


@contextmanager
def using(replacement: Route) -> Iterator[Route]:
    """Send queries through ``replacement`` for a while (tests: a primary on a refused
    port); the previous route comes back afterwards."""
    global _route
    with _route_lock:
        previous, _route = _route, replacement
    try:
        yield replacement
    finally:
        with _route_lock:
            _route = previous


def _reset_on_settings_change(*, setting: str, **kwargs: Any) -> None:
    global _route
    if setting.startswith("CLICKHOUSE_"):
        with _route_lock:
            _route = None


setting_changed.connect(_reset_on_settings_change)


def call(operation: Callable[[Any], T]) -> tuple[T, str]:
    """``operation(client)`` on the primary, or on the backup when the primary cannot be
    reached or its breaker is open; returns the result and who served it."""
    current = route()
    if current.backup is None:
        return operation(_connected(current.primary)), PRIMARY
    reason = "breaker_open"
    if current.breaker.allow_primary():
        try:
            result = operation(current.primary())
        except Exception as exc:
            if not is_connect_failure(exc):
                current.breaker.succeeded()  # the primary answered; the query failed
                raise
            current.breaker.failed()
            reason = "connect_failed"
            logger.warning("clickhouse_failover", error=root_cause(exc))
        else:
            current.breaker.succeeded()
            return result, PRIMARY
    FAILOVERS.labels(reason=reason).inc()
    client = _connected(current.backup, "ClickHouse is unavailable (primary and backup)")
    return operation(client), BACKUP


def _connected(getter: Callable[[], Any], message: str = "ClickHouse is unavailable") -> Any:
    """The client ``getter`` gives; a failure to connect is the 503 ServiceUnavailableError."""
    try:
        return getter()
    except ServiceUnavailableError:
        raise
    except Exception as exc:
        logger.warning("clickhouse_unavailable", error=_first_line(exc))
        raise ServiceUnavailableError(f"{message}; try again shortly.") from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [""])[0][:300]


def root_cause(exc: BaseException) -> str:
    """The innermost error a driver error was raised from ("ConnectionRefusedError: [Errno
    111] Connection refused"), which says more than the wrappers' first lines."""
    seen: set[int] = set()
    current = exc
    while id(current) not in seen:
        seen.add(id(current))
        following = current.__cause__ or current.__context__
        if following is None:
            break
        current = following
    return f"{type(current).__name__}: {_first_line(current)}"
