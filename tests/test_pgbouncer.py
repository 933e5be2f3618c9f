"""The server behind PgBouncer in transaction mode (Debian's pgbouncer, a real process on a
loopback port, in front of the tests' PostgreSQL).

With DB_PREPARED_STATEMENTS=false and its LISTEN connections on DATABASE_LISTEN_URL (the
direct server), the whole request path works through the pooler: sign-in, meetings, chat, a
live watch, email delivery. With prepared statements on, requests fail: SQL-level PREPARE
lives in one server session, and the pooler hands each transaction whichever session is free.
"""

from __future__ import annotations

import concurrent.futures
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psycopg2
import pytest

from meetings.v1 import chat_pb2, chat_pb2_grpc, meetings_pb2_grpc, sessions_pb2, sessions_pb2_grpc
from server import supervisor
from server.domain import auth
from server.storage import database
from tests import rpc_helpers
from tests.conftest import Account, PgDatabase, install_debian_package
from tests.replicas import Replica
from tests.test_chat_watch import Watcher

PGBOUNCER = Path("/usr/sbin/pgbouncer")


@dataclass
class Bouncer:
    port: int
    database: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        # Any user name: auth_type = any logs every client in as the [databases] line's user.
        return f"postgresql://meetings@127.0.0.1:{self.port}/{self.database}"

    def stats(self) -> dict[str, Any]:
        """SHOW STATS of the pooler's admin console, for our database."""
        conn = psycopg2.connect(
            host="127.0.0.1", port=self.port, user="pgbouncer", dbname="pgbouncer"
        )
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW STATS")
                names = [column[0] for column in cur.description or ()]
                rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        finally:
            conn.close()
        return next(row for row in rows if row["database"] == self.database)


def _databases_line(url: str) -> str:
    """pgbouncer's [databases] entry for the server of `url` (TCP or a unix socket dir)."""
    params = database.connection_params(url)
    target = {
        "host": params.get("host", "127.0.0.1"),
        "port": params.get("port", 5432),
        "dbname": params["database"],
        "user": params.get("user", "postgres"),
    }
    if params.get("password"):
        target["password"] = params["password"]
    return " ".join(f"{key}={value}" for key, value in target.items())


def _run_as(url: str) -> str | None:
    """The user pgbouncer runs as (it refuses to run as root): the owner of the server's
    socket directory, which may be the only user allowed into it (the embedded server's)."""
    if os.geteuid() != 0:
        return None
    host = str(database.connection_params(url).get("host", ""))
    owner = os.stat(host).st_uid if host.startswith("/") else 0
    return pwd.getpwuid(owner).pw_name if owner != 0 else "nobody"


def start_pgbouncer(folder: Path, postgres: PgDatabase, pool_mode: str) -> Bouncer:
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    port = supervisor.free_port("127.0.0.1")
    config = folder / "pgbouncer.ini"
    config.write_text(
        "[databases]\n"
        f"{postgres.name} = {_databases_line(postgres.url)}\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        "unix_socket_dir =\n"
        # The tests' servers trust every local client; the pooler need not check anything.
        "auth_type = any\n"
        "admin_users = pgbouncer\n"
        f"pool_mode = {pool_mode}\n"
        "max_client_conn = 500\n"
        "default_pool_size = 20\n"
    )
    config.chmod(0o644)
    user = _run_as(postgres.url)
    command = [str(PGBOUNCER), *(["-u", user] if user else []), str(config)]
    log = folder / "pgbouncer.log"
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out)
    bouncer = Bouncer(port, postgres.name, process, log)
    deadline = time.monotonic() + 10
    while True:
        try:
            psycopg2.connect(bouncer.url, connect_timeout=1).close()
            return bouncer
        except psycopg2.OperationalError:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)


@pytest.fixture(scope="module")
def pgbouncer(
    postgres: PgDatabase, pool: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Bouncer]:
    if not PGBOUNCER.exists() and shutil.which("apt-get") is None:
        pytest.skip(f"{PGBOUNCER} is missing and there is no apt-get to install Debian's pgbouncer")
    try:
        install_debian_package("pgbouncer", PGBOUNCER)
    except subprocess.CalledProcessError as failed:
        pytest.skip(f"apt-get could not install pgbouncer: {failed.stderr.decode()[-500:]}")
    bouncer = start_pgbouncer(tmp_path_factory.mktemp("pgbouncer"), postgres, "transaction")
    yield bouncer
    bouncer.process.send_signal(signal.SIGTERM)
    bouncer.process.wait(timeout=10)


def _replica(folder: Path, bouncer: Bouncer, postgres: PgDatabase, **env: str) -> Replica:
    replica = Replica(
        supervisor.free_port("127.0.0.1"),
        folder / "replica.log",
        {
            "DATABASE_URL": bouncer.url,
            "DATABASE_LISTEN_URL": postgres.url,
            "DATA_DIR": str(folder / "data"),
            "SHUTDOWN_DRAIN_SECONDS": "0",
            **env,
        },
    )
    replica.start(postgres)
    return replica


PASSWORD = "correct horse battery"
# Longer than any step takes: a message that arrives sooner was woken by LISTEN, not by the
# re-read that follows each keepalive.
KEEPALIVE_SECONDS = 20.0
LIVE = 5.0  # seconds


def _sign_in(channel: grpc.Channel, login: str) -> Account:
    """SessionService.CreateSession with a password (as `POST /session` does)."""
    stub = sessions_pb2_grpc.SessionServiceStub(channel)
    request = sessions_pb2.CreateSessionRequest(
        user=sessions_pb2.SessionUser(login=login, password=PASSWORD)
    )
    session = stub.CreateSession(request).session
    return Account(session.user_id, login, "", session.token)


def _send(channel: grpc.Channel, account: Account, dialog: str, text: str) -> chat_pb2.Message:
    stub = chat_pb2_grpc.ChatServiceStub(channel)
    request = chat_pb2.CreateMessageRequest(chat_dialog_id=dialog, message=text)
    sent: chat_pb2.Message = stub.CreateMessage(request, metadata=account.metadata)
    return sent


def _create_get_list(stub: meetings_pb2_grpc.MeetingServiceStub, host: Account, n: int) -> str:
    """One user's round of calls; "ok", or how it failed."""
    try:
        made = rpc_helpers.create(stub, host, name=f"Concurrent {n}")
        rpc_helpers.get(stub, host, rpc_helpers.m_id(made))
        rpc_helpers.listed(stub, host)
    except grpc.RpcError as error:
        return error.code().name
    return "ok"


def _at_once(stub: meetings_pb2_grpc.MeetingServiceStub, host: Account) -> list[str]:
    """40 rounds on 8 threads: the pool's connections take turns on the pooler's sessions."""
    with concurrent.futures.ThreadPoolExecutor(8) as threads:
        return list(threads.map(lambda n: _create_get_list(stub, host, n), range(40)))


def test_the_request_path_works_through_pgbouncer_in_transaction_mode(
    pgbouncer: Bouncer, postgres: PgDatabase, db: Any, tmp_path: Path
) -> None:
    auth.create_user("host", PASSWORD, "host@example.com", "Host")
    auth.create_user("attendee", PASSWORD, "attendee@example.com", "Attendee")
    transactions = pgbouncer.stats()["total_xact_count"]
    replica = _replica(
        tmp_path,
        pgbouncer,
        postgres,
        DB_PREPARED_STATEMENTS="false",
        DELIVERY_ENABLED="true",
        CHAT_WATCH_KEEPALIVE_SECONDS=str(KEEPALIVE_SECONDS),
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{replica.port}") as channel:
            meetings = meetings_pb2_grpc.MeetingServiceStub(channel)
            host, attendee = _sign_in(channel, "host"), _sign_in(channel, "attendee")
            made = rpc_helpers.create(
                meetings, host, chat=True, notify=True, attendees=[{"id": attendee.user_id}]
            )
            meeting_id, dialog = rpc_helpers.m_id(made), made.chat_dialog_id
            assert rpc_helpers.get(meetings, attendee, meeting_id).name == "Friday weekly sync"
            rpc_helpers.update(meetings, host, meeting_id, name="Renamed")
            assert rpc_helpers.get(meetings, host, meeting_id).name == "Renamed"
            assert rpc_helpers.listed(meetings, attendee) == [meeting_id]

            assert _at_once(meetings, host) == ["ok"] * 40

            first = _send(channel, attendee, dialog, "before the watch")
            watcher = Watcher(
                chat_pb2_grpc.ChatServiceStub(channel),
                host,
                chat_dialog_id=dialog,
                after_message_id=rpc_helpers.m_id(first),
            )
            try:
                _send(channel, attendee, dialog, "while it starts")
                assert watcher.messages(1) == ["while it starts"]
                # The watch now waits on its subscription: only a NOTIFY wakes it this soon.
                sent_at = time.monotonic()
                live = _send(channel, attendee, dialog, "live")
                got = watcher.next_message()
                assert time.monotonic() - sent_at < LIVE
                assert (rpc_helpers.m_id(got), got.message) == (rpc_helpers.m_id(live), "live")
            finally:
                watcher.cancel()

        # The invitation, delivered by the loop (woken by NOTIFY, its claims through the
        # pooler) into the mail sink: one message to both.
        inbox = tmp_path / "data" / "mail" / "new"
        deadline = time.monotonic() + LIVE
        while not list(inbox.glob("*")) and time.monotonic() < deadline:
            time.sleep(0.1)
        [mail] = [path.read_text() for path in inbox.glob("*")]
        assert "Delivered-To: host@example.com, attendee@example.com\n" in mail
    finally:
        replica.stop(signal.SIGTERM)
    assert "Traceback" not in replica.log.read_text()
    # Every call above went through the pooler (40 rounds of 3 calls alone: 120 and more).
    assert pgbouncer.stats()["total_xact_count"] - transactions > 120


def test_with_prepared_statements_concurrent_requests_fail_behind_transaction_pooling(
    pgbouncer: Bouncer, postgres: PgDatabase, db: Any, tmp_path: Path
) -> None:
    """Why DB_PREPARED_STATEMENTS=false: each pool connection names its statements
    meetings_0, meetings_1, ... in its own session, but the pooler runs each transaction on
    whichever session is free. One at a time, calls happen to work (the pooler reuses its
    last session); at once, they find a name taken by another connection's statement, or no
    statement by that name, and fail."""
    auth.create_user("host", PASSWORD, "host@example.com", "Host")
    replica = _replica(tmp_path, pgbouncer, postgres, DB_PREPARED_STATEMENTS="true")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{replica.port}") as channel:
            meetings = meetings_pb2_grpc.MeetingServiceStub(channel)
            host = _sign_in(channel, "host")
            one_at_a_time = [_create_get_list(meetings, host, n) for n in range(5)]
            at_once = _at_once(meetings, host)
    finally:
        replica.stop(signal.SIGTERM)
    assert one_at_a_time == ["ok"] * 5
    # INTERNAL for "already exists"; UNAVAILABLE ("try again") for "does not exist", which
    # psycopg2 raises as an OperationalError, as it does for a lost connection.
    failed = [outcome for outcome in at_once if outcome != "ok"]
    assert len(failed) >= 10, at_once
    assert set(failed) <= {"INTERNAL", "UNAVAILABLE"}
    log = replica.log.read_text()
    assert "already exists" in log or "does not exist" in log
