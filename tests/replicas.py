"""Server replicas as their own processes (`python -m server`) on the tests' database."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from server import supervisor
from tests.conftest import REPO, PgDatabase
from tests.gateway.conftest import Gateway, start_envoy, stop_envoy


@dataclass
class Replica:
    port: int
    log: Path
    # More environment for the process (settings), beside the database and port.
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self, postgres: PgDatabase) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": postgres.url,
            "GRPC_PORT": str(self.port),
            "DELIVERY_ENABLED": "false",
            **self.env,
        }
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "server"], env=env, cwd=REPO, stdout=out, stderr=out
            )
        deadline = time.monotonic() + 30
        while not supervisor.grpc_serving(f"127.0.0.1:{self.port}"):
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "the replica did not start"
            time.sleep(0.1)

    def stop(self, sig: int) -> float:
        """Signal the replica and wait for it to exit; returns how long that took."""
        assert self.process is not None
        began = time.monotonic()
        self.process.send_signal(sig)
        self.process.wait(timeout=30)
        return time.monotonic() - began


@contextlib.contextmanager
def behind_envoy(
    postgres: PgDatabase, tmp: Path, envs: list[dict[str, str]]
) -> Iterator[tuple[list[Replica], Gateway]]:
    """One replica per entry of `envs` (its extra settings), all behind one Envoy, each seen
    healthy by its health checks; whatever is still running is killed on exit."""
    made = [
        Replica(supervisor.free_port("127.0.0.1"), tmp / f"replica{n}.log", env)
        for n, env in enumerate(envs)
    ]
    for replica in made:
        replica.start(postgres)
    envoy, gateway = start_envoy(tmp, *(replica.port for replica in made))
    try:
        deadline = time.monotonic() + 30
        while gateway.call("GET", "/session").status != 401:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(2.5)  # every replica seen healthy by the health checks
        yield made, gateway
    finally:
        stop_envoy(envoy)
        for replica in made:
            if replica.process is not None and replica.process.poll() is None:
                replica.process.kill()
                replica.process.wait()
