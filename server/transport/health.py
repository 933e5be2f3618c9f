"""Health: SERVING while the database answers, NOT_SERVING while it does not (or on shutdown)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from grpc_health.v1 import health, health_pb2

from server.storage import database

log = logging.getLogger(__name__)


class DatabaseWatch:
    """Pings the database on its own connection every `interval` seconds and sets the status
    of every listed service (and of the server as a whole, "")."""

    def __init__(
        self,
        servicer: health.HealthServicer,
        services: list[str],
        url: str,
        interval: float,
        pool: Any,
    ) -> None:
        self._servicer = servicer
        self._services = ["", *services]
        self._probe = database.Probe(url)
        self._interval = interval
        self._pool = pool
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health-db", daemon=True)
        self.serving: bool | None = None

    def start(self) -> None:
        self.check()
        self._thread.start()

    def stop(self) -> None:
        """Stop watching and report NOT_SERVING from now on (shutdown)."""
        self._stop.set()
        log.info("shutting down: health NOT_SERVING")
        self._publish(False)
        self._thread.join(timeout=5)
        self._publish(False)  # over a check that was under way when the flag was set
        self._probe.close()

    def check(self) -> bool:
        ok = self._probe.ok()
        if not self._stop.is_set():
            self._set(ok)
        return ok

    def _set(self, ok: bool) -> None:
        if ok == self.serving:
            return
        if not ok:
            log.warning("database unreachable: health NOT_SERVING")
            # Pooled connections did not survive the outage; drop the idle ones now rather
            # than have the next requests fail on them.
            self._pool.close_idle()
        elif self.serving is not None:
            log.info("database reachable again: health SERVING")
            self._pool.close_idle()
        self._publish(ok)

    def _publish(self, ok: bool) -> None:
        self.serving = ok
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if ok
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in self._services:
            self._servicer.set(service, status)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.check()
            except Exception:
                log.exception("health check failed")
