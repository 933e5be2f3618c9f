"""Metrics, traces and the dashboard, against real servers, a real SMTP server and Envoy."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from server.supervisor import free_port
from tests.conftest import REPO, PgDatabase
from tests.notifications.conftest import SmtpServer, smtp

__all__ = ["Supervised", "metric_names_in_rules", "smtp", "supervise"]

RULES = REPO / "deploy" / "prometheus"


@dataclass
class Supervised:
    process: subprocess.Popen[str]
    gateway_port: int
    metrics_port: int
    # Everything the supervisor and its children printed so far (their JSON log lines too).
    output: list[str] = field(default_factory=list)


@contextlib.contextmanager
def supervise(
    postgres: PgDatabase, smtp: SmtpServer, tmp_path: Path, **settings: str
) -> Iterator[Supervised]:
    """`make run` on the tests' database and SMTP server, with more `settings`."""
    metrics_port = free_port("127.0.0.1")
    env = {
        **os.environ,
        "DATABASE_URL": postgres.url,
        "DATA_DIR": str(tmp_path),
        "GATEWAY_PORT": "0",
        "ENVOY_ADMIN_PORT": "0",
        "GRPC_PORT": "0",
        "METRICS_PORT": str(metrics_port),
        "SMTP_URL": smtp.url,
        "DELIVERY_POLL_SECONDS": "0.2",
        "SHUTDOWN_GRACE_SECONDS": "2",
        **settings,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "server.supervisor"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    lines: queue.Queue[str] = queue.Queue()

    def drain() -> None:
        for line in process.stdout or ():
            output.append(line)
            lines.put(line)

    threading.Thread(target=drain, daemon=True).start()
    try:
        gateway = metrics = None
        deadline = time.monotonic() + 90
        while metrics is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                assert process.poll() is None, "".join(output)
                continue
            if found := re.match(r"Meetings REST API: http://127\.0\.0\.1:(\d+) ", line):
                gateway = int(found[1])
            if found := re.match(r"Metrics: http://127\.0\.0\.1:(\d+)/metrics", line):
                metrics = int(found[1])
        assert gateway is not None and metrics == metrics_port, "".join(output)
        yield Supervised(process, gateway, metrics, output)
    finally:
        process.terminate()
        process.wait(timeout=30)


def metric_names_in_rules() -> set[str]:
    """The metric names the alert rules read (the tests check that /metrics serves each)."""
    text = (RULES / "alerts.yml").read_text()
    return set(re.findall(r"\b(?:meetings|grpc_server)_[a-z_]+\b", text))
