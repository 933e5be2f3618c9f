"""GET /metrics (Prometheus' text format) on a port of its own: what the server processes
counted (telemetry.metrics), what the database says now, and Envoy's own stats.

One endpoint per machine, served by whoever owns the machine's processes:
- `python -m server` alone (a container; a replica of a deployment): its own counters and the
  database's view (`standalone`);
- the supervisor (`make run`, SERVER_PROCESSES): its server processes' counters, added up from
  PROMETHEUS_MULTIPROC_DIR, the database's view and Envoy's `/stats/prometheus`, read on its
  loopback admin port at each scrape (`supervised`).

The database's view (outbox backlog, webhook endpoint, recordings stored) is the same from every
replica: scrape one, or take max() across them. It is read at scrape time, with a 2 s statement
timeout, rather than kept by a loop: nothing runs when nobody scrapes.
"""

from __future__ import annotations

import logging
import platform
import tempfile
import threading
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

from server.domain import recordings, webhook_settings
from server.storage import database, outbox
from server.storage.database import db

log = logging.getLogger(__name__)

ENVOY_TIMEOUT_SECONDS = 2.0
STATEMENT_TIMEOUT_MS = 2000


class DatabaseView(Collector):
    """The database's view, read at each scrape; `meetings_database_up` 0 when it fails."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "meetings_database_up", "Whether the database answered this scrape's queries."
        )
        try:
            with db.connection_context(), db.atomic():
                database.time_limit(STATEMENT_TIMEOUT_MS)
                backlog = outbox.backlog()
                webhook = webhook_settings.load()
                count, size = recordings.stored()
        except Exception as exc:  # any failure is "down" to the scraper; the log says which
            log.warning("metrics: database not read", extra={"error": type(exc).__name__})
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _outbox_families(backlog)
        endpoint = GaugeMetricFamily(
            "meetings_webhook_endpoint_state",
            "The recording-done webhook endpoint's state (1 for the current one).",
            labels=["state"],
        )
        for name in webhook_settings.STATES:
            endpoint.add_metric([name], float(name == webhook.state))
        yield endpoint
        yield GaugeMetricFamily("meetings_recordings_stored", "Recordings stored.", value=count)
        yield GaugeMetricFamily(
            "meetings_recordings_stored_bytes", "Bytes of the recordings stored.", value=size
        )


def _outbox_families(backlog: list[outbox.Backlog]) -> Iterator[Metric]:
    messages = GaugeMetricFamily(
        "meetings_outbox_messages",
        "Outbox messages waiting: due (past their time, not yet claimed) or sending.",
        labels=["kind", "state"],
    )
    oldest = GaugeMetricFamily(
        "meetings_outbox_oldest_due_age_seconds",
        "How long ago the longest-waiting unsent message fell due (0: none waits).",
        labels=["kind"],
    )
    for item in backlog:
        messages.add_metric([item.kind, "due"], item.due)
        messages.add_metric([item.kind, "sending"], item.sending)
        oldest.add_metric([item.kind], item.oldest_due_seconds)
    yield messages
    yield oldest


class BuildInfo(Collector):
    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "meetings_build_info",
            "The running version (always 1).",
            labels=["version", "python_version", "grpcio_version"],
        )
        info.add_metric(
            [
                metadata.version("meetings-api"),
                platform.python_version(),
                metadata.version("grpcio"),
            ],
            1,
        )
        yield info


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def envoy_stats(admin_port: int) -> bytes:
    """Envoy's stats in Prometheus' format, with `meetings_envoy_up` saying whether they were
    read. Appended as Envoy wrote them (parsing and re-exposing ~1,000 families would rename
    its counters with a `_total` suffix, breaking Envoy's own dashboards)."""
    url = f"http://127.0.0.1:{admin_port}/stats/prometheus"
    try:
        with urllib.request.urlopen(url, timeout=ENVOY_TIMEOUT_SECONDS) as response:
            text: bytes = response.read()
    except OSError as exc:
        log.warning("metrics: Envoy's stats not read", extra={"error": type(exc).__name__})
        text = b""
    up = GaugeMetricFamily(
        "meetings_envoy_up",
        "Whether Envoy's admin endpoint answered this scrape.",
        value=bool(text),
    )
    return generate_latest(_Families([up])) + text + (b"" if text.endswith(b"\n") else b"\n")


def application(registry: Any, extra: Callable[[], bytes] = bytes) -> Callable[..., Any]:
    """The WSGI application: GET /metrics is `registry`'s families, then `extra()`."""

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"Not found: the metrics are at /metrics\n"]
        body = generate_latest(registry) + extra()
        # The classic text format, which every Prometheus reads and Envoy writes (our names
        # need none of 1.0.0's UTF-8 escaping).
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_PLAIN_0_0_4)])
        return [body]

    return serve


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every 15 s is not news; errors still reach the log


class Endpoint:
    """The HTTP server of /metrics, in a daemon thread."""

    def __init__(self, host: str, port: int, app: Callable[..., Any]) -> None:
        self._server = make_server(
            host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler
        )
        self.port = int(self._server.server_port)
        self.url = f"http://{host}:{self.port}/metrics"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics", daemon=True
        )

    def start(self) -> Endpoint:
        self._thread.start()
        log.info("metrics listening", extra={"port": self.port})
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def standalone(host: str, port: int) -> Endpoint:
    """A server process's own endpoint: its metrics (and the process's CPU and memory)."""
    REGISTRY.register(DatabaseView())
    REGISTRY.register(BuildInfo())
    return Endpoint(host, port, application(REGISTRY)).start()


def multiprocess_dir() -> Path:
    """A fresh directory for the server processes' values (PROMETHEUS_MULTIPROC_DIR must be
    empty when they start: files of an earlier run would be added in)."""
    return Path(tempfile.mkdtemp(prefix="meetings-metrics-"))


def supervised(host: str, port: int, values: Path, envoy_admin_port: int | None) -> Endpoint:
    """The supervisor's endpoint: its server processes' metrics from `values`, the database's
    view (when it has a database) and Envoy's stats."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(values))  # type: ignore[no-untyped-call]
    registry.register(BuildInfo())
    if db.obj is not None:
        registry.register(DatabaseView())
    extra: Callable[[], bytes] = bytes
    if envoy_admin_port is not None:
        extra = lambda: envoy_stats(envoy_admin_port)  # noqa: E731
    return Endpoint(host, port, application(registry, extra)).start()
