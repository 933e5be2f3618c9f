"""LISTEN on a PostgreSQL channel: how a writer on any replica wakes the waiters on all of them.

A listener has a connection of its own, outside the pool (it waits long). NOTIFY is delivered
at commit, so a waiter woken by it finds the row that caused it.
"""

from __future__ import annotations

import select
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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
        """True if a notification arrived within `timeout` seconds (see `receive`)."""
        return bool(self.receive(timeout, stop))

    def receive(self, timeout: float, stop: threading.Event | None = None) -> list[str] | None:
        """The payloads of the notifications that arrived within `timeout` seconds; None if
        some may have been missed (the connection was just opened, or failed). A failed
        connection is dropped (the next call reconnects) and the rest of the timeout is slept,
        on `stop` if given, so that a waiter without a database does not spin."""
        fresh = self._conn is None
        try:
            self.connect()
            if not self._conn.notifies:
                ready, _, _ = select.select([self._conn], [], [], max(timeout, 0))
                if ready:
                    self._conn.poll()
        except (psycopg2.Error, OSError):
            self.close()
            (stop or threading.Event()).wait(timeout)
            return None
        payloads = [n.payload for n in self._conn.notifies]
        self._conn.notifies.clear()
        return None if fresh else payloads

    def close(self) -> None:
        close_quietly(self._conn)
        self._conn = None


class Subscription:
    """One waiter's view of a key of a `Fanout`: a version that changes when a notification
    with that key arrives (or when some may have been missed)."""

    def __init__(self, changed: threading.Condition, versions: dict[str, int], key: str) -> None:
        self._changed = changed
        self._versions = versions
        self._key = key
        self._cancelled = False

    def version(self) -> int:
        with self._changed:
            return self._versions[self._key]

    def wait(self, seen: int, timeout: float) -> int:
        """The version, once it differs from `seen` (or at the timeout, or on `cancel`)."""
        with self._changed:
            self._changed.wait_for(
                lambda: self._cancelled or self._versions[self._key] != seen, timeout
            )
            return self._versions[self._key]

    def cancel(self) -> None:
        """Ends the current and every later wait at once (the waiter is going away)."""
        with self._changed:
            self._cancelled = True
            self._changed.notify_all()


class Fanout:
    """One LISTEN connection for every waiter of a process, each waiting for notifications
    whose payload is its key (a chat dialog's id): a connection per waiter would put one
    database connection behind every open browser tab. Waiters re-read on any change, so a
    notification only has to say which key changed; when some may have been missed (the
    listener reconnected), every waiter is woken."""

    def __init__(self, params: dict[str, Any], channel: str) -> None:
        self._listener = Listener(params, channel)
        self._changed = threading.Condition()
        self._versions: dict[str, int] = {}
        self._waiters: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"listen-{channel}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._bump(None)

    @contextmanager
    def subscribe(self, key: str) -> Iterator[Subscription]:
        with self._changed:
            self._waiters[key] = self._waiters.get(key, 0) + 1
            self._versions.setdefault(key, 0)
        try:
            yield Subscription(self._changed, self._versions, key)
        finally:
            with self._changed:
                self._waiters[key] -= 1
                if not self._waiters[key]:
                    del self._waiters[key], self._versions[key]

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                # A second at most, so that stop() is prompt.
                self._bump(self._listener.receive(1.0, self._stop))
        finally:
            self._listener.close()

    def _bump(self, keys: list[str] | None) -> None:
        """Wakes the waiters of `keys`; of every key if None. (One condition for all keys: a
        notification wakes every waiter of the process to compare a number, 100 at the
        default CHAT_WATCHES_MAX, which costs less than a condition per key to keep.)"""
        if keys == []:
            return
        with self._changed:
            for key in self._versions.keys() if keys is None else set(keys):
                if key in self._versions:
                    self._versions[key] += 1
            self._changed.notify_all()
