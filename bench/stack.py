"""The benchmark's processes: its own PostgreSQL, N gRPC server processes and one Envoy.

The servers are `python -m server` (or `python -m bench.null_server`, the framework ceiling)
on free ports; Envoy runs the repository's envoy.yaml rendered the way `make run` renders it
(server.supervisor), with one cluster endpoint per server process.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import psycopg2
from psycopg2 import sql

from server import settings, supervisor
from server.storage import database, embedded_db, migrations

REPO = settings.REPO
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mib(pid: int) -> float:
    """Resident memory of a live process in MiB (0 if it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Postgres:
    """Fresh databases on DATABASE_URL's server, or on an embedded one in a temp folder."""

    def __init__(self, workdir: Path, external_url: str | None) -> None:
        self._embedded: embedded_db.EmbeddedPostgres | None = None
        self._external = external_url
        if external_url:
            self.admin_params = database.connection_params(external_url)
        else:
            self._embedded = embedded_db.EmbeddedPostgres(workdir / "db", database="postgres")
            self.admin_params = database.connection_params(self._embedded.url("postgres"))
        self.admin_params.pop("connect_timeout", None)
        self._created: list[str] = []

    def url(self, name: str) -> str:
        if self._embedded is not None:
            return self._embedded.url(name)
        assert self._external is not None
        scheme, rest = self._external.split("://", 1)
        authority, _, path = rest.partition("/")
        _, _, query = path.partition("?")
        return f"{scheme}://{authority}/{name}" + (f"?{query}" if query else "")

    def params(self, name: str) -> dict[str, str]:
        """libpq environment variables for `name` (for pgbench)."""
        p = database.connection_params(self.url(name))
        names = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD"}
        env = {names[k]: str(v) for k, v in p.items() if k in names and v not in ("", None)}
        return env | {"PGDATABASE": str(p["database"])}

    def create(self, prefix: str) -> str:
        """A new, migrated database; returns its name."""
        name = f"{prefix}_{secrets.token_hex(3)}"
        self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self._created.append(name)
        pool = database.connect(self.url(name), 2)
        migrations.migrate(pool)
        pool.close_all()
        return name

    def _admin(self, statement: sql.Composable) -> None:
        conn = psycopg2.connect(**self.admin_params)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()

    def close(self) -> None:
        for name in self._created:
            with contextlib.suppress(psycopg2.Error):
                drop = "DROP DATABASE IF EXISTS {} WITH (FORCE)"
                self._admin(sql.SQL(drop).format(sql.Identifier(name)))
        if self._embedded is not None:
            self._embedded.stop()


@dataclass
class Stack:
    """`processes` servers (`command`) and Envoy in front; a context manager."""

    workdir: Path
    database_url: str
    processes: int = 1
    command: tuple[str, ...] = ("-m", "server")
    env: Mapping[str, str] = field(default_factory=dict)
    # More of envoy.yaml's placeholders (e.g. supervisor.tracing_values).
    envoy_values: Mapping[str, str | int] = field(default_factory=dict)
    gateway_port: int = 0
    grpc_ports: list[int] = field(default_factory=list)
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def gateway(self) -> str:
        return f"127.0.0.1:{self.gateway_port}"

    @property
    def server_pids(self) -> list[int]:
        return [child.pid for child in self.children[: self.processes]]

    @property
    def envoy_pid(self) -> int:
        return self.children[-1].pid

    def __enter__(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.grpc_ports = [supervisor.free_port("127.0.0.1") for _ in range(self.processes)]
        # Each process's /metrics (the bench reads what they counted).
        self.metrics_ports = [supervisor.free_port("127.0.0.1") for _ in range(self.processes)]
        self.gateway_port = supervisor.free_port("127.0.0.1")
        base_env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "DATA_DIR": str(self.workdir),
            "LOG_LEVEL": "WARNING",
            "SHUTDOWN_GRACE_SECONDS": "1",
            # Envoy is stopped before the servers: nothing to drain away from.
            "SHUTDOWN_DRAIN_SECONDS": "0",
            "PUBLIC_BASE_URL": f"http://{self.gateway}",
            **self.env,
        }
        log = (self.workdir / "server.log").open("ab")
        for port, metrics_port in zip(self.grpc_ports, self.metrics_ports, strict=True):
            self.children.append(
                subprocess.Popen(  # noqa: S603 (our own modules)
                    [sys.executable, *self.command],
                    cwd=REPO,
                    env=base_env
                    | {"GRPC_PORT": str(port), "METRICS_PORT": str(metrics_port)}
                    | dict(self.env),
                    stdout=log,
                    stderr=log,
                )
            )
        deadline = time.monotonic() + 60
        for port, child in zip(self.grpc_ports, self.children, strict=True):
            while not supervisor.grpc_serving(f"127.0.0.1:{port}"):
                if child.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server on {port} did not start (see {log.name})")
                time.sleep(0.1)
        values: dict[str, str | int] = {
            "GATEWAY_PORT": self.gateway_port,
            "ENVOY_ADMIN_PORT": supervisor.free_port("127.0.0.1"),
            "GRPC_PORT": self.grpc_ports[0],
            **self.envoy_values,
        }
        template = (REPO / "envoy.yaml").read_text()
        rendered = supervisor.render_envoy_config(template, values)
        config = self.workdir / f"envoy-{self.gateway_port}.yaml"
        config.write_text(supervisor.with_server_ports(rendered, self.grpc_ports))
        envoy = [str(Path(sys.executable).parent / "envoy"), "-c", str(config), "-l", "error"]
        # The access log (one line per request on stderr) is kept: it is part of the path.
        self.children.append(
            subprocess.Popen(  # noqa: S603 (the venv's Envoy)
                [*envoy, "--disable-hot-restart", "--drain-time-s", "1"],
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        # Healthy through Envoy a few times in a row: every endpoint has passed its check.
        healthy = 0
        while healthy < 3 * self.processes:
            healthy = healthy + 1 if supervisor.grpc_serving(self.gateway) else 0
            if self.children[-1].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Envoy did not become ready")
            time.sleep(0.05)
        # Envoy marks hosts healthy one check at a time: give the last one a moment.
        time.sleep(1.0)

    def stop(self) -> None:
        for child in reversed(self.children):
            if child.poll() is None:
                child.terminate()
        for child in self.children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.children.clear()


@contextlib.contextmanager
def cpu_meter(pids: Mapping[str, list[int]]) -> Iterator[dict[str, float]]:
    """CPU seconds each named group of processes used inside the block (filled on exit)."""
    before = {name: sum(cpu_seconds(p) for p in group) for name, group in pids.items()}
    used: dict[str, float] = {}
    yield used
    for name, group in pids.items():
        used[name] = sum(cpu_seconds(p) for p in group) - before[name]
