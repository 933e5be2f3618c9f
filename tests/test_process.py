"""The server as a process: graceful SIGTERM, and the operator CLI."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import grpc
import psycopg2

from meetings.v1 import meetings_pb2 as pb
from meetings.v1 import meetings_pb2_grpc
from server.domain import applications, auth
from tests.conftest import REPO, Account, PgDatabase
from tests.rpc_helpers import create, m_id, update


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def run_cli(postgres: PgDatabase, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": postgres.url}
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def test_cli_creates_a_user_and_prints_a_working_token(postgres: PgDatabase, db: Any) -> None:
    made = run_cli(
        postgres,
        "create-user",
        "dana",
        "--password",
        "correct horse battery",
        "--email",
        "dana@example.com",
        "--full-name",
        "Dana D",
    )
    assert made.returncode == 0, made.stderr
    assert "created user 'dana' with id" in made.stdout
    token = run_cli(postgres, "token", "dana")
    assert token.returncode == 0
    assert auth.authenticate(token.stdout.strip()).email == "dana@example.com"

    again = run_cli(postgres, "create-user", "dana", "--password", "correct horse battery")
    assert (again.returncode, again.stderr.strip()) == (1, "login: has already been taken")
    short = run_cli(postgres, "create-user", "erin", "--password", "short")
    assert short.returncode == 1 and "password: must be 8 to 1024 characters" in short.stderr
    missing = run_cli(postgres, "token", "nobody")
    assert missing.returncode == 1 and "no user with login 'nobody'" in missing.stderr


def test_sigterm_lets_in_flight_calls_finish(postgres: PgDatabase, db: Any) -> None:
    auth.create_user("host", "correct horse battery")
    token = auth.issue_token("host", 3600).token
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": postgres.url,
        "GRPC_PORT": str(port),
        "SHUTDOWN_GRACE_SECONDS": "10",
        "DELIVERY_ENABLED": "false",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "server"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = meetings_pb2_grpc.MeetingServiceStub(channel)

        host = Account(0, "host", "", token)

        meeting = create(stub, host)
        # Hold the meeting's row lock so that an update is in flight when SIGTERM arrives.
        blocker = psycopg2.connect(postgres.url)
        cur = blocker.cursor()
        cur.execute("SELECT 1 FROM meetings WHERE id = %s FOR UPDATE", (m_id(meeting),))
        results: list[Any] = []
        worker = threading.Thread(
            target=lambda: results.append(update(stub, host, m_id(meeting), name="finished"))
        )
        worker.start()
        time.sleep(1.0)
        server.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert server.poll() is None, "the server quit with a call in flight"
        blocker.rollback()
        blocker.close()
        worker.join(timeout=15)
        assert [r.name for r in results] == ["finished"]
        assert server.wait(timeout=20) == 0
        # New calls are refused once it has stopped.
        try:
            stub.ListMeetingsPage(pb.ListMeetingsRequest(), metadata=host.metadata, timeout=2)
            raise AssertionError("the stopped server answered")
        except grpc.RpcError as error:
            assert error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        channel.close()
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()
    logs = server.stderr.read() if server.stderr else ""
    assert '"msg": "shutting down", "signal": "SIGTERM"' in logs
    assert token not in logs


def test_cli_shows_and_changes_the_application_credentials(postgres: PgDatabase, db: Any) -> None:
    def shown(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
        assert result.returncode == 0, result.stderr
        return dict(line.split(" = ", 1) for line in result.stdout.strip().splitlines())

    first = shown(run_cli(postgres, "app"))
    assert first["application_id"] == "1" and len(first["auth_key"]) >= 16
    assert shown(run_cli(postgres, "app")) == first  # made once, then the same everywhere
    moved = shown(run_cli(postgres, "app", "--id", "4242"))
    assert moved == first | {"application_id": "4242"}
    rotated = shown(run_cli(postgres, "app", "--rotate"))
    assert rotated["application_id"] == "4242"
    assert rotated["auth_key"] != first["auth_key"]
    assert rotated["auth_secret"] != first["auth_secret"]
    assert applications.current().auth_key == rotated["auth_key"]
