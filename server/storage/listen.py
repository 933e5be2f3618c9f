"""LISTEN on a PostgreSQL channel: how a writer on any replica wakes the waiters on all of them.

A listener has a connection of its own, outside the pool (it waits long). NOTIFY is delivered
at commit, so a waiter woken by it finds the row that caused it.
"""

from __future__ import annotations

import select
import threading
from typing import Any

import psycopg2

from server.storage.database import close_quietly


class Listener:
    def __init__(self, params: dict[str, Any], channel: str) -> None:
        self._params = params
        self._channel = channel
        self._conn: Any = None

    def connect(self) -> None:
        """Open the connection and LISTEN, unless that is done (raises if the database is down)."""
        if self._conn is None:
            self._conn = psycopg2.connect(**self._params)
            self._conn.autocommit = True
            with self._conn.cursor() as cur:
                cur.execute(f"LISTEN {self._channel}")

    def wait(self, timeout: float, stop: threading.Event | None = None) -> bool:
        """True if a notification arrived within `timeout` seconds. If the connection fails,
        it is dropped (the next wait reconnects) and the rest of the timeout is slept, on
        `stop` if given, so that a waiter without a database does not spin."""
        try:
            self.connect()
            if not self._conn.notifies:
                ready, _, _ = select.select([self._conn], [], [], max(timeout, 0))
                if ready:
                    self._conn.poll()
        except (psycopg2.Error, OSError):
            self.close()
            (stop or threading.Event()).wait(timeout)
            return False
        arrived = bool(self._conn.notifies)
        self._conn.notifies.clear()
        return arrived

    def close(self) -> None:
        close_quietly(self._conn)
        self._conn = None
