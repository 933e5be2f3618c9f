"""Rolling restarts: two server processes behind one Envoy under steady REST load.

SIGTERM to one replica (it reports NOT_SERVING, keeps serving through its drain, then stops)
and starting it again fails no request; `kill -9` of one fails at most the calls it held
that may not be retried (see the last assertion).
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Account, PgDatabase
from tests.gateway.conftest import Gateway, create_meeting
from tests.replicas import Replica, behind_envoy

LOAD_THREADS = 4


@dataclass
class Load:
    """Threads sending a steady mix of reads, updates and creates until stopped."""

    gateway: Gateway
    token: str
    meeting_id: str
    results: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> Iterator[None]:
        threads = [threading.Thread(target=self._loop, args=(n,)) for n in range(LOAD_THREADS)]
        for thread in threads:
            thread.start()
        try:
            yield
        finally:
            self._stop.set()
            for thread in threads:
                thread.join(timeout=30)

    def snapshot(self) -> tuple[int, int]:
        with self._lock:
            return sum(self.results.values()), len(self.failures)

    def _loop(self, number: int) -> None:
        calls = [
            ("GET", f"/meetings?_id={self.meeting_id}", None),
            ("GET", "/meetings", None),
            ("PUT", f"/meetings/{self.meeting_id}", {"name": f"sync {number}"}),
            (
                "POST",
                "/meetings",
                {"name": "load", "start_date": 1613729948, "end_date": 1613731012},
            ),
        ]
        n = 0
        while not self._stop.is_set():
            method, path, body = calls[n % len(calls)]
            n += 1
            try:
                status = self.gateway.call(method, path, token=self.token, json_body=body).status
                outcome = str(status)
            except Exception as exc:  # a reset connection counts as a failure too
                outcome = type(exc).__name__
            with self._lock:
                self.results[outcome] += 1
                if outcome != "200":
                    self.failures.append(f"{method} {path.split('?')[0]}: {outcome}")


@pytest.fixture
def replicas(
    postgres: PgDatabase, tmp_path: Path, pool: Any
) -> Iterator[tuple[list[Replica], Gateway]]:
    with behind_envoy(postgres, tmp_path, [{}, {}]) as running:
        yield running


def _steady(load: Load, seconds: float) -> None:
    time.sleep(seconds)
    assert load.snapshot()[0] > 0


def test_a_rolling_restart_fails_no_request_and_a_kill_fails_few(
    replicas: tuple[list[Replica], Gateway],
    accounts: dict[str, Account],
    postgres: PgDatabase,
) -> None:
    (first, second), gateway = replicas
    token = accounts["host"].token
    meeting = create_meeting(gateway, token)
    load = Load(gateway, token, meeting["_id"])
    runner = load.run()
    next(runner)
    try:
        _steady(load, 1.0)
        before_restart = load.snapshot()
        took = first.stop(signal.SIGTERM)
        assert first.process is not None and first.process.returncode == 0
        first.start(postgres)
        _steady(load, 2.5)  # the new process is back in rotation
        after_restart = load.snapshot()
        assert after_restart[1] == 0, load.failures  # not one failed request

        second.stop(signal.SIGKILL)
        _steady(load, 2.0)
        second.start(postgres)
        _steady(load, 2.5)
        after_kill = load.snapshot()
    finally:
        next(runner, None)
    served = after_restart[0] - before_restart[0]
    killed_failures = after_kill[1] - after_restart[1]
    print(
        f"\nrolling restart: {served} requests while one replica drained ({took:.1f} s) and "
        f"came back, 0 failed; kill -9: {killed_failures} failed of "
        f"{after_kill[0] - after_restart[0]} ({load.failures})"
    )
    assert served > 50
    # Only what the killed replica held when it died, at most one call per load thread: a
    # create (never sent twice) or a list whose first rows had already been sent. Connection
    # failures, resets before any reply, and everything after are retried or routed away.
    assert killed_failures <= LOAD_THREADS, load.failures
