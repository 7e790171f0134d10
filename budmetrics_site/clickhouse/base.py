"""django-clickhouse-backend with its connection made by clickhouse-connect.

The upstream backend speaks clickhouse-driver (native protocol, port 9000). We keep its
ORM, schema editor and migrations but open connections with clickhouse-connect, which
reaches a ClickHouse server over HTTP or the embedded chDB engine (``chdb://`` DSN).
Only the paths the backend relies on are adapted: connect, cursor, bulk INSERT and
``.iterator()``.
"""

from __future__ import annotations

import re
from typing import Any

from clickhouse_backend.backend.base import DatabaseWrapper as UpstreamDatabaseWrapper
from clickhouse_connect import dbapi
from clickhouse_connect.dbapi.cursor import Cursor as ConnectCursor
from clickhouse_connect.driver import create_client
from clickhouse_connect.driver.httputil import get_pool_manager

# The backend's INSERT compiler emits ``INSERT INTO t (cols) VALUES`` with the rows as
# params (a clickhouse-driver habit); route those to a native insert.
_BARE_INSERT = re.compile(r"^\s*INSERT\s+INTO\s+.+\)\s*(SETTINGS\s+.+\s+)?VALUES\s*$", re.I | re.S)


class Cursor(ConnectCursor):
    def execute(self, operation: str, parameters: Any = None, *args: Any, **kwargs: Any) -> None:
        if (
            parameters
            and isinstance(parameters, list | tuple)
            and _BARE_INSERT.match(operation)
            and all(isinstance(row, list | tuple) for row in parameters)
        ):
            self.executemany(operation, parameters)
            return
        super().execute(operation, parameters, *args, **kwargs)

    def set_stream_results(self, stream: bool, max_row_buffer: int) -> None:
        """Called by the backend's ``chunked_cursor``; results arrive whole, in blocks."""

    def set_settings(self, settings: dict[str, Any]) -> None:
        """clickhouse-driver API the backend may call; settings ride in the SQL instead."""


class Connection(dbapi.Connection):
    """A DB-API connection whose client gets its settings and pool from our OPTIONS."""

    def __init__(self, **params: Any) -> None:
        self.client = create_client(**params)
        self.timezone = self.client.server_tz

    def cursor(self) -> Cursor:
        return Cursor(self.client)


class Database:
    """The DB-API module the upstream wrapper expects, with our ``connect``."""

    Error = dbapi.Error
    DatabaseError = dbapi.DatabaseError
    DataError = dbapi.DataError
    IntegrityError = dbapi.IntegrityError
    InterfaceError = dbapi.InterfaceError
    InternalError = dbapi.InternalError
    NotSupportedError = dbapi.NotSupportedError
    OperationalError = dbapi.OperationalError
    ProgrammingError = dbapi.ProgrammingError
    Warning = dbapi.Warning
    Binary = dbapi.Binary
    paramstyle = dbapi.paramstyle

    @staticmethod
    def connect(**params: Any) -> Connection:
        return Connection(**params)


def _connect_creating_database(conn_params: dict[str, Any]) -> Connection:
    """Connect; if the configured database does not exist yet (a fresh chDB directory or
    server), create it first so ``migrate --database clickhouse`` works on a clean start."""
    try:
        return Database.connect(**conn_params)
    except dbapi.DatabaseError as exc:
        if "UNKNOWN_DATABASE" not in str(exc) or not conn_params.get("database"):
            raise
    bootstrap = Database.connect(**{**conn_params, "database": "default"})
    name = conn_params["database"].replace("`", "")
    bootstrap.client.command(f"CREATE DATABASE IF NOT EXISTS `{name}`")
    if not conn_params.get("dsn"):
        bootstrap.close()
    return Database.connect(**conn_params)


class DatabaseWrapper(UpstreamDatabaseWrapper):
    Database = Database

    def get_connection_params(self) -> dict[str, Any]:
        options = dict(self.settings_dict.get("OPTIONS") or {})
        params: dict[str, Any] = {
            "database": self.settings_dict["NAME"],
            "settings": dict(options.pop("settings", {})),
        }
        dsn = options.pop("dsn", None)
        if dsn:
            params["dsn"] = dsn
        else:
            params.update(
                host=self.settings_dict["HOST"] or "localhost",
                port=int(self.settings_dict["PORT"] or 8123),
                username=self.settings_dict["USER"] or "default",
                password=self.settings_dict["PASSWORD"] or "",
            )
            pool_size = options.pop("pool_size", None)
            if pool_size:
                params["pool_mgr"] = get_pool_manager(maxsize=int(pool_size), num_pools=1)
        params.update(options)
        return params

    def get_new_connection(self, conn_params: dict[str, Any]) -> Connection:
        # One shared connection per alias and parameters (the client is thread-safe and,
        # for chDB, one engine per process is all there can be).
        key = {k: v for k, v in conn_params.items() if k != "pool_mgr"}
        with self._connection_sharing_lock:
            cached = self._clickhouse_connections.get(self.alias)
            if cached and cached[0] == key:
                return cached[1]
            conn = _connect_creating_database(conn_params)
            self._clickhouse_connections[self.alias] = (key, conn)
        return conn

    def is_usable(self) -> bool:
        try:
            self.connection.client.command("SELECT 1")
        except dbapi.Error:
            return False
        return True
