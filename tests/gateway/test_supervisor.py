"""`make run` end to end: python -m server.supervisor with its own data folder and free ports."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from server import settings
from tests.gateway.conftest import MEETING_KEYS, raw_request

BASE_URL = re.compile(r"^Meetings REST API: https?://127\.0\.0\.1:(\d+) ")


@dataclass
class Running:
    process: subprocess.Popen[str]
    port: int
    lines: queue.Queue[str]

    def children(self) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                    found.append(int(entry.name))
        return found


def _environment(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PUBLIC_BASE_URL")}
    return (
        env
        | {
            "DATA_DIR": str(data_dir),
            "GATEWAY_PORT": "0",
            "ENVOY_ADMIN_PORT": "0",
            "GRPC_PORT": "0",
            "SHUTDOWN_GRACE_SECONDS": "2",
        }
        | extra
    )


def _start(data_dir: Path, **extra: str) -> Running:
    process = subprocess.Popen(
        [sys.executable, "-m", "server.supervisor"],
        cwd=settings.REPO,
        env=_environment(data_dir, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def drain() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=drain, daemon=True).start()
    deadline = time.monotonic() + 90
    seen: list[str] = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            assert process.poll() is None, "".join(seen)
            continue
        seen.append(line)
        match = BASE_URL.match(line)
        if match:
            return Running(process, int(match.group(1)), lines)
    process.kill()
    raise AssertionError("no base URL printed:\n" + "".join(seen))


def _admin(data_dir: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=settings.REPO,
        env=_environment(data_dir),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def _postmaster_running(data_dir: Path) -> bool:
    return (data_dir / "pg" / "postmaster.pid").exists()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("supervised")
    yield path


def test_make_run_serves_rest_and_stops_everything_on_sigterm(data_dir: Path) -> None:
    running = _start(data_dir)
    children = running.children()
    assert len(children) == 2  # the gRPC server and Envoy
    assert _postmaster_running(data_dir)

    _admin(data_dir, "create-user", "alice", "--password", "a long secret")
    token = _admin(data_dir, "token", "alice")
    reply = raw_request(
        "127.0.0.1", running.port, "POST", "/meetings",
        json.dumps({"name": "Supervised", "start_date": 1613729948, "end_date": 1613731012}),
        {"CB-Token": token, "Content-Type": "application/json"},
    )  # fmt: skip
    assert reply.status == 200
    assert set(json.loads(reply.body)) == MEETING_KEYS

    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(timeout=30) == 0
    for pid in children:
        assert not Path(f"/proc/{pid}").exists(), pid
    assert not _postmaster_running(data_dir)


def test_when_one_child_dies_everything_stops(data_dir: Path) -> None:
    running = _start(data_dir)
    envoy = [p for p in running.children() if "envoy" in Path(f"/proc/{p}/cmdline").read_text()]
    assert len(envoy) == 1
    os.kill(envoy[0], signal.SIGKILL)

    assert running.process.wait(timeout=30) == 1
    assert running.children() == []
    assert not _postmaster_running(data_dir)
    output = []
    while not running.lines.empty():
        output.append(running.lines.get())
    assert "Envoy exited with status -9: stopping\n" in output


def _refused_start(data_dir: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    """`make run` that is expected to stop before it starts: its exit status and output."""
    return subprocess.run(
        [sys.executable, "-m", "server.supervisor"],
        cwd=settings.REPO,
        env=_environment(data_dir, **extra),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_broken_envoy_config_stops_make_run_before_it_starts(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text((settings.REPO / "envoy.yaml").read_text().replace("codec_type", "codec"))
    result = _refused_start(tmp_path / "data", ENVOY_CONFIG=str(broken))
    assert result.returncode == 1
    assert result.stderr.startswith(f"cannot start: the Envoy configuration {broken} (rendered")
    assert "is not valid" in result.stderr
    assert re.search(r"no\s+such\s+field:\s+'codec'", result.stderr)  # Envoy's reason
    assert not (tmp_path / "data" / "pg").exists()  # nothing was started


@pytest.mark.parametrize("setting", ["GATEWAY_PORT", "METRICS_PORT"])
def test_a_port_in_use_stops_make_run_before_it_starts(tmp_path: Path, setting: str) -> None:
    """An old instance (or another stack) on GATEWAY_PORT, or another /metrics on
    METRICS_PORT (9464 by default): a clear refusal up front, not two stacks sharing the port
    (before, SO_REUSEPORT let the kernel split traffic between them)."""
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = _refused_start(tmp_path / "data", **{setting: str(port)})
    assert result.returncode == 1
    assert result.stderr.startswith(f"cannot start: {setting} {port} on 127.0.0.1 is in use")
    assert "Meetings REST API" not in result.stdout
    assert not (tmp_path / "data" / "pg").exists()  # nothing was started
