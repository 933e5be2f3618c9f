"""The server as a process: graceful SIGTERM, and the operator CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import psycopg2

from meetings.v1 import meetings_pb2 as pb
from meetings.v1 import meetings_pb2_grpc
from server.domain import applications, auth
from server.storage import migrations
from server.supervisor import free_port
from tests.conftest import REPO, Account, PgDatabase, _create_database, _drop_database
from tests.rpc_helpers import create, m_id, update

LATEST = max(version for version, _, _ in migrations.MIGRATIONS)


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
    port = free_port("127.0.0.1")
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
            stub.ListMeetingsPage(pb.ListMeetingsPageRequest(), metadata=host.metadata, timeout=2)
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


# The installed entry point, run as an operator would: from a directory of their own.
ADMIN = str(Path(sys.executable).parent / "meetings-admin")


def _admin_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATA_DIR")}
    return {**env, **settings}


def run_admin(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ADMIN, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_cli_without_a_database_refuses_and_creates_none(tmp_path: Path) -> None:
    # DATA_DIR unset: the default `data` is relative to where the command is run.
    refused = run_admin(tmp_path, _admin_env(), "token", "alice")
    assert refused.returncode == 2
    assert str(tmp_path / "data" / "pg") in refused.stderr
    assert "Set DATA_DIR to the service's data directory, or DATABASE_URL" in refused.stderr
    assert refused.stdout == ""
    elsewhere = tmp_path / "elsewhere"
    refused = run_admin(tmp_path, _admin_env(DATA_DIR=str(elsewhere)), "migrate")
    assert refused.returncode == 2
    assert f"no database in {elsewhere / 'pg'}" in refused.stderr
    assert list(tmp_path.iterdir()) == []  # no data directory, no cluster


def test_cli_uses_the_running_service_embedded_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "service-data"
    port = free_port("127.0.0.1")
    service = subprocess.Popen(
        [sys.executable, "-m", "server"],
        env=_admin_env(
            DATA_DIR=str(data_dir),
            GRPC_PORT=str(port),
            DELIVERY_ENABLED="false",
            SHUTDOWN_DRAIN_SECONDS="0",
        ),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    postmaster = data_dir / "pg" / "postmaster.pid"
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=60)
        stub = meetings_pb2_grpc.MeetingServiceStub(channel)
        server_pid = postmaster.read_text().split()[0]

        env = _admin_env(DATA_DIR=str(data_dir))
        made = run_admin(tmp_path, env, "create-user", "olga", "--password", "a long secret")
        assert made.returncode == 0, made.stderr
        token = run_admin(tmp_path, env, "token", "olga")
        assert token.returncode == 0, token.stderr
        migrated = run_admin(tmp_path, env, "migrate")
        assert (migrated.returncode, migrated.stdout) == (
            0,
            f"schema up to date (version {LATEST})\n",
        )

        # The user and token are the service's: it accepts the token, and its database
        # server is the one it started, still running after the commands exited.
        auth = (("cb-token", token.stdout.strip()),)
        olga = Account(0, "olga", "", token.stdout.strip())
        create(stub, olga, name="Made with the CLI's token")
        page = stub.ListMeetingsPage(pb.ListMeetingsPageRequest(), metadata=auth, timeout=5)
        assert [m.name for m in page.items] == ["Made with the CLI's token"]
        assert postmaster.read_text().split()[0] == server_pid
        assert not (tmp_path / "data").exists()
        channel.close()
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=30)
    assert service.returncode == 0, service.stderr.read() if service.stderr else ""
    assert not postmaster.exists()  # the service stopped its server; the CLI left it alone

    # With the service stopped, the command starts the server for itself and stops it again.
    env = _admin_env(DATA_DIR=str(data_dir))
    token = run_admin(tmp_path, env, "token", "olga")
    assert token.returncode == 0, token.stderr
    assert not postmaster.exists()


def test_cli_migrate_applies_the_migrations_and_reports_them(postgres: PgDatabase) -> None:
    name = f"meetings_migrate_{os.getpid()}"
    _create_database(postgres.admin_url, name)
    try:
        url = postgres.url.replace(f"/{postgres.name}", f"/{name}", 1)
        env = _admin_env(DATABASE_URL=url)
        first = run_admin(REPO, env, "migrate")
        assert first.returncode == 0, first.stderr
        lines = first.stdout.splitlines()
        assert [line.split(":")[0] for line in lines] == [
            f"applied migration {version}" for version in range(1, LATEST + 1)
        ]
        assert lines[0].endswith(
            ": users, sessions, meetings, attendees, chat dialogs, recording events"
        )
        again = run_admin(REPO, env, "migrate")
        assert (again.returncode, again.stdout) == (0, f"schema up to date (version {LATEST})\n")
    finally:
        _drop_database(postgres.admin_url, name)
