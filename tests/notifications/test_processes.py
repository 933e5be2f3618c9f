"""Real server processes (`python -m server`) sharing one database and one SMTP server."""

from __future__ import annotations

import collections
import mailbox
import os
import select
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc

from meetings.v1 import meetings_pb2_grpc
from server.domain import auth
from server.supervisor import free_port
from tests.conftest import REPO, Account, PgDatabase
from tests.delivery_helpers import enqueue_reminders, wait_until
from tests.notifications.conftest import SmtpServer
from tests.rpc_helpers import create


class Server:
    def __init__(self, postgres: PgDatabase, folder: Path, name: str, **env: str) -> None:
        self.name = name
        self.port = free_port("127.0.0.1")
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / f"{name}.log"
        environment = {
            **os.environ,
            "DATABASE_URL": postgres.url,
            "GRPC_PORT": str(self.port),
            "DATA_DIR": str(folder),
            "WORKER_ID": name,
            "LOG_LEVEL": "WARNING",
            "DELIVERY_LEASE_SECONDS": "3",
            "DELIVERY_POLL_SECONDS": "0.5",
            "SHUTDOWN_GRACE_SECONDS": "5",
            **env,
        }
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "server"],
                env=environment,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if ready and "listening on" in self.process.stdout.readline():
                return
            assert self.process.poll() is None, self.log.read_text()
        raise AssertionError(f"{self.name} did not start: {self.log.read_text()}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=20)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


def due_times(db: Any) -> dict[str, float]:
    rows = db.execute_sql(
        "SELECT recipients->0->>'email', (payload->>'due_at')::float8 FROM outbox"
    ).fetchall()
    return {address: float(due) for address, due in rows}


def statuses(db: Any) -> dict[str, int]:
    rows = db.execute_sql("SELECT status, count(*) FROM outbox GROUP BY 1").fetchall()
    return {status: int(count) for status, count in rows}


def test_three_replicas_deliver_each_message_once(
    postgres: PgDatabase, db: Any, smtp: SmtpServer, tmp_path: Path
) -> None:
    servers = [Server(postgres, tmp_path, f"replica{i}", SMTP_URL=smtp.url) for i in range(3)]
    backlog, timed = 3000, 150
    try:
        for server in servers:
            server.wait_ready()
        # A backlog of due reminders. One replica is stopped (SIGTERM) half-way: it finishes
        # the message it is sending, claims nothing more, hands back its other claims, exits 0.
        began = time.monotonic()
        enqueue_reminders(db, 1, backlog, due_in=0, spread=0)
        wait_until(lambda: len(smtp.received) >= backlog // 2, timeout=60)
        assert servers[0].stop() == 0
        wait_until(lambda: len(smtp.received) >= backlog, timeout=90)
        drained = time.monotonic() - began
        # Then reminders falling due over three seconds, to see how late they go out.
        enqueue_reminders(db, backlog + 1, timed, due_in=1.5, spread=0.02)
        wait_until(lambda: len(smtp.received) >= backlog + timed, timeout=30)
        time.sleep(1.0)  # a late duplicate would show up here
        assert [server.stop() for server in servers[1:]] == [0, 0]
    finally:
        for server in servers:
            server.kill()

    due = due_times(db)
    total = backlog + timed
    ids = collections.Counter(r.message_id for r in smtp.received)
    addresses = {address for r in smtp.received for address in r.recipients}
    duplicates = sum(n - 1 for n in ids.values())
    lost = total - len(ids)
    late = sorted(
        r.at - due[r.recipients[0]]
        for r in smtp.received
        if int(r.recipients[0][1:].split("@")[0]) > backlog
    )
    p50, p99 = statistics.median(late), late[int(len(late) * 0.99) - 1]
    print(
        f"\n{total} reminders, 3 replicas (one stopped half-way): duplicates {duplicates},"
        f" lost {lost}; backlog of {backlog} sent in {drained:.1f} s;"
        f" lateness of {timed} reminders due over 3 s: p50 {p50 * 1000:.0f} ms,"
        f" p99 {p99 * 1000:.0f} ms, max {late[-1] * 1000:.0f} ms"
    )
    assert (duplicates, lost) == (0, 0)
    assert len(addresses) == total
    assert statuses(db) == {"sent": total}
    assert late[0] > -0.05 and p99 < 1.0


def test_a_replica_killed_mid_send_loses_nothing(
    postgres: PgDatabase, db: Any, smtp: SmtpServer, tmp_path: Path
) -> None:
    smtp.hold_at = 5  # the 5th message is kept, but its "250" waits until the sender is dead
    first = Server(postgres, tmp_path, "doomed", SMTP_URL=smtp.url)
    second = None
    try:
        first.wait_ready()
        enqueue_reminders(db, 1, 60, due_in=0, spread=0)
        assert smtp.holding.wait(timeout=30)
        first.kill()  # SIGKILL: no cleanup; its claimed rows stay leased
        killed_at = time.monotonic()
        smtp.release.set()
        second = Server(postgres, tmp_path, "survivor", SMTP_URL=smtp.url)
        second.wait_ready()
        wait_until(lambda: statuses(db) == {"sent": 60}, timeout=30)
        recovered = time.monotonic() - killed_at
        assert second.stop() == 0
    finally:
        first.kill()
        if second is not None:
            second.kill()

    ids = collections.Counter(r.message_id for r in smtp.received)
    duplicates = sum(n - 1 for n in ids.values())
    print(
        f"\nkill -9 mid-send: {len(ids)} of 60 delivered, duplicates {duplicates},"
        f" all sent {recovered:.1f} s after the kill (lease 3 s)"
    )
    assert len(ids) == 60  # nothing lost
    assert duplicates <= 1  # at most the message in flight at the kill
    assert recovered < 3 + 0.5 + 5


def test_with_no_smtp_server_invitation_and_reminder_land_in_the_mail_sink(
    postgres: PgDatabase, db: Any, accounts: dict[str, Account], tmp_path: Path
) -> None:
    """What `make run` does: no SMTP_URL, so mail goes to <DATA_DIR>/mail (a Maildir)."""
    server = Server(postgres, tmp_path / "data", "local")
    try:
        server.wait_ready()
        host = accounts["host"]
        assert auth.authenticate(host.token).user_id == host.user_id
        start = int(time.time()) + 3
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = meetings_pb2_grpc.MeetingServiceStub(channel)
            create(
                stub,
                host,
                start_date=start,
                end_date=start + 1800,
                notify=True,
                notify_before={"metric": "minutes", "value": 0},
                attendees=[{"email": "guest@example.org"}],
            )
        sink = tmp_path / "data" / "mail"
        wait_until(lambda: len(list((sink / "new").glob("*"))) >= 2, timeout=15)
        assert server.stop() == 0
    finally:
        server.kill()
    files = sorted((sink / "new").iterdir(), key=lambda path: path.stat().st_mtime)
    box = mailbox.Maildir(sink, create=False)
    subjects = [str(message["Subject"]).split(":")[0] for message in box]
    assert sorted(subjects) == ["Invitation", "Reminder"]
    assert len(files) == 2
    late = files[-1].stat().st_mtime - start
    print(f"\nmail sink: reminder written {late * 1000:.0f} ms after its due time")
    assert -0.05 < late < 1.0
    for message in box:
        assert message["Delivered-To"] == "host@example.com, guest@example.org"
