"""The database handle: one pooled Peewee database per process, configured from one URL."""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Sequence
from typing import Any

import peewee
import psycopg2
from playhouse import db_url
from playhouse.pool import MaxConnectionsExceeded, PooledPostgresqlDatabase
from psycopg2.extensions import TRANSACTION_STATUS_UNKNOWN, connection

from server.telemetry import metrics

# Models bind to this proxy; `connect` points it at the real database.
db: Any = peewee.DatabaseProxy()

# Driver errors that mean "the database is not reachable right now" (mapped to UNAVAILABLE).
CONNECTION_ERRORS = (peewee.OperationalError, peewee.InterfaceError)


def connection_params(url: str) -> dict[str, Any]:
    """psycopg2 connect() arguments for a postgres:// or postgresql:// URL."""
    params: dict[str, Any] = db_url.parse(url, unquote_password=True, unquote_user=True)
    params.setdefault("connect_timeout", 5)
    return params


class _Pool(PooledPostgresqlDatabase):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # When the calling thread's first try at a connection found the pool full.
        self._waiting = threading.local()
        metrics.DB_POOL_MAX.inc(self._max_connections)

    def _is_closed(self, conn: Any) -> bool:
        # Peewee checks a pooled connection with a `SELECT 1` round trip at every checkout,
        # holding the pool's lock: every RPC queued behind it, which capped a server process
        # at ~1/round trip (make bench: get at ~500/s against ~2,400/s with no database work).
        # psycopg2 knows without a round trip whether a connection was closed or broken, and
        # the health watch (transport.health) drops idle connections when the database goes away.
        return bool(conn.closed) or conn.get_transaction_status() == TRANSACTION_STATUS_UNKNOWN

    def connect(self, reuse_if_open: bool = False) -> Any:
        """A connection for this thread; how long it waited for one, if it had to, observed."""
        self._waiting.since = None
        try:
            return super().connect(reuse_if_open)
        finally:
            since = self._waiting.since
            if since is not None and metrics.enabled:
                metrics.DB_POOL_WAIT_SECONDS.observe(time.monotonic() - since)

    def _connect(self) -> Any:
        try:
            conn = super()._connect()
        except MaxConnectionsExceeded:
            if self._waiting.since is None:  # the first refusal: the wait starts
                self._waiting.since = time.monotonic()
            raise
        if metrics.enabled:
            metrics.DB_POOL_IN_USE.inc()
        return conn

    def _close(self, conn: Any, close_conn: bool = False) -> None:
        with self._pool_lock:  # reentrant: the base class takes it again
            checked_out = self.conn_key(conn) in self._in_use
            super()._close(conn, close_conn)
        if checked_out and metrics.enabled:
            metrics.DB_POOL_IN_USE.dec()

    def cancel_running(self) -> int:
        """Cancel whatever each checked-out connection is running (shutdown, past the grace:
        a call held on a lock would otherwise keep the process alive); returns how many."""
        with self._pool_lock:
            running = [pooled.connection for pooled in self._in_use.values()]
        for conn in running:
            with contextlib.suppress(psycopg2.Error):
                conn.cancel()
        return len(running)


class _Connection(connection):
    """A psycopg2 connection that remembers the statements it has prepared (SQL -> name)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prepared: dict[str, str] = {}


# Per connection; past this many distinct statements (list filters combine freely), start over.
PREPARED_MAX = 256
_PLACEHOLDER = re.compile(r"%s")
_log = logging.getLogger("peewee")


def execute_prepared(sql: str, params: Sequence[Any] = ()) -> Any:
    """Run `sql` (psycopg2 `%s` placeholders) as a prepared statement of this connection.

    The request path's statements are short and run all the time: parsing and planning them
    was most of PostgreSQL's work (pgbench on the get statements: 2,750 tx/s as plain queries,
    7,200 prepared). A statement is prepared on first use on each connection (prepared
    statements live as long as their session, whatever its transactions do) and run with
    EXECUTE from then on. The statement is logged as written, not as EXECUTE, so that
    capturing the SQL of an operation (bench.list_plan) sees what it runs.
    """
    conn = db.connection()
    prepared: dict[str, str] | None = getattr(conn, "prepared", None)
    if prepared is None:  # a plain connection (not made by connect()): run it as it is
        return db.execute_sql(sql, params)
    name = prepared.get(sql)
    if name is None:
        if len(prepared) >= PREPARED_MAX:
            db.execute_sql("DEALLOCATE ALL")
            prepared.clear()
        name = f"meetings_{len(prepared)}"
        numbers = iter(range(1, len(params) + 1))
        db.execute_sql(f"PREPARE {name} AS " + _PLACEHOLDER.sub(lambda _: f"${next(numbers)}", sql))
        prepared[sql] = name
    _log.debug((sql, tuple(params)))
    arguments = f" ({', '.join(['%s'] * len(params))})" if params else ""
    return db.execute_sql(f"EXECUTE {name}{arguments}", params)


def connect(url: str, max_connections: int, *, prepared: bool = True) -> PooledPostgresqlDatabase:
    """Open the process's pool (lazily: connections are made on first use) and bind the models.

    `prepared`: whether execute_prepared prepares statements (else it runs them as they are)."""
    params = connection_params(url)
    name = params.pop("database")
    database = _Pool(
        name,
        max_connections=max_connections,
        # Seconds a caller waits for a free connection before MaxConnectionsExceeded.
        timeout=10,
        stale_timeout=300,
        connection_factory=_Connection if prepared else connection,
        **params,
    )
    db.initialize(database)
    return database


def time_limit(milliseconds: int) -> None:
    """Cancel this transaction's statements that run longer than `milliseconds`."""
    db.execute_sql("SELECT set_config('statement_timeout', %s, true)", (str(milliseconds),))


class Probe:
    """Whether the database answers, asked on a connection of its own (outside the pool, so
    that a full pool does not look like an outage)."""

    def __init__(self, url: str, connect_timeout: int = 2) -> None:
        self._params = connection_params(url) | {"connect_timeout": connect_timeout}
        self._conn: Any = None

    def ok(self) -> bool:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg2.connect(**self._params)
                self._conn.autocommit = True
            with self._conn.cursor() as cur:
                cur.execute("SELECT 1")
            return True
        except psycopg2.Error:
            self.close()
            return False

    def close(self) -> None:
        close_quietly(self._conn)
        self._conn = None


def close_quietly(conn: Any) -> None:
    """Close a connection of our own (if any), whatever state it is in."""
    if conn is not None:
        try:
            conn.close()
        except psycopg2.Error:
            pass
