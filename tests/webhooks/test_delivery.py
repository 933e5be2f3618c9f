"""The recording-done webhook end to end: real gRPC server, real outbox and delivery loop, a
real HTTP receiver on 127.0.0.1, signatures checked with the reference verifier."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import grpc
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from meetings.v1 import recordings_pb2 as rpb
from meetings.v1 import recordings_pb2_grpc
from server.delivery import loop, mailer
from server.domain import (
    clock,
    meeting_settings,
    recording_webhooks,
    service_keys,
    webhook_settings,
)
from server.storage import outbox
from server.storage.models import Meeting, Outbox, Recording
from server.storage.recording_files import FilesystemStorage
from server.supervisor import free_port
from tests.conftest import REPO, Account, PgDatabase
from tests.delivery_helpers import email_loop, full_loop, networks
from tests.rpc_helpers import create, m_id
from tests.test_recordings import upload
from tests.webhooks.conftest import Delivery, Receiver, Reply

LOOPBACK = networks("127.0.0.0/8", "::1/128")


def make_deliverer(
    tmp_path: Path, allowed: Any = LOOPBACK, timeout: float = 5.0
) -> loop.DeliveryLoop:
    return full_loop(
        mailer.from_settings(None, tmp_path / "mail"),
        base_url="http://127.0.0.1:8080",
        storage=FilesystemStorage(tmp_path / "recordings"),
        allowed=allowed,
        timeout=timeout,
        rand=lambda: 0.5,
        worker_id="test",
    )


@dataclass
class Scenario:
    """A host, the media server, a receiver with the webhook on, and a delivery loop."""

    meetings: Any
    host: Account
    media: Any
    media_key: str
    secret: str
    receiver: Receiver
    deliverer: loop.DeliveryLoop
    tmp_path: Path

    def finished_meeting(self, count: int = 2, end: bool = True) -> tuple[str, list[Any]]:
        """A meeting with `count` uploaded recordings; its call ended unless `end` is False."""
        now = int(time.time())
        meeting_id = m_id(
            create(self.meetings, self.host, start_date=now - 3600, end_date=now + 3600)
        )
        made = [
            upload(
                self.media,
                self.media_key,
                meeting_id,
                data=f"file {i}".encode() * 100,
                participants_ids=[self.host.user_id],
                duration=5.5 + i,
            )
            for i in range(count)
        ]
        if end:
            self.media.EndCall(
                rpb.EndCallRequest(meeting_id=meeting_id),
                metadata=(("cb-service-key", self.media_key),),
            )
        return meeting_id, made

    def first_attempt(self, reply: Reply | None = None, **deliverer: Any) -> Any:
        """One finished meeting, one delivery attempt answered with `reply`; its outbox row."""
        if reply is not None:
            self.receiver.replies.put(reply)
        self.finished_meeting(count=1)
        (make_deliverer(self.tmp_path, **deliverer) if deliverer else self.deliverer).run_once()
        [row] = webhook_rows()
        return row

    def body(self, index: int) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.receiver.wait_for(index + 1)[index].body)
        return document


@pytest.fixture
def scenario(
    meeting_stub: Any,
    accounts: dict[str, Account],
    channel: grpc.Channel,
    receiver: Receiver,
    tmp_path: Path,
    db: Any,
) -> Scenario:
    webhook_settings.update(url=receiver.url, enabled=True)
    return Scenario(
        meetings=meeting_stub,
        host=accounts["host"],
        media=recordings_pb2_grpc.MediaServiceStub(channel),
        media_key=service_keys.issue(service_keys.MEDIA),
        secret=webhook_settings.load().active_secrets(clock.now())[0],
        receiver=receiver,
        deliverer=make_deliverer(tmp_path),
        tmp_path=tmp_path,
    )


def webhook_rows() -> list[Any]:
    return list(Outbox.select().where(Outbox.kind == "webhook").order_by(Outbox.id))


def ids(document: dict[str, Any]) -> list[str]:
    return [record["_id"] for record in document["callRecords"]]


def test_one_signed_delivery_per_finished_meeting(scenario: Scenario) -> None:
    host, receiver = scenario.host, scenario.receiver
    meeting_id, made = scenario.finished_meeting()
    scenario.deliverer.run_once()
    scenario.deliverer.run_once()
    [got] = receiver.wait_for(1)
    document = Webhook(scenario.secret).verify(got.body, got.headers)  # the reference verifier
    assert set(document) == {"meeting", "hostUser", "callRecords"}
    meeting = document["meeting"]
    assert (meeting["_id"], meeting["host_id"]) == (meeting_id, host.user_id)
    assert set(meeting) == {
        "_id",
        "name",
        "start_date",
        "end_date",
        "attendees",
        "public",
        "scheduled",
        "record",
        "chat_dialog_id",
        "created_at",
        "updated_at",
        "host_id",
        "notify",
        "notify_before",
        "timezone",
    }
    assert (document["hostUser"]["id"], document["hostUser"]["login"]) == (host.user_id, "host")
    assert "password_hash" not in document["hostUser"]
    records = document["callRecords"]
    assert ids(document) == [m.id for m in made]
    assert [r["file_uid"] for r in records] == [m.file_uid for m in made]
    assert records[1]["duration"] == 6.5 and records[0]["participants_ids"] == [host.user_id]
    query = parse_qs(urlsplit(records[0]["download_url"]).query)
    assert int(query["expires"][0]) > time.time() + 3000
    assert got.headers["content-type"] == "application/json"
    assert got.headers["webhook-id"].startswith("msg_")
    # Nothing more for that meeting...
    scenario.deliverer.run_once()
    time.sleep(0.3)
    assert len(receiver.deliveries) == 1
    # ...until another recording arrives: a delivery with just that one.
    late = upload(scenario.media, scenario.media_key, meeting_id, data=b"late" * 10)
    scenario.deliverer.run_once()
    assert ids(scenario.body(1)) == [late.id]
    assert receiver.deliveries[1].headers["webhook-id"] != got.headers["webhook-id"]
    assert [row.status for row in webhook_rows()] == ["sent", "sent"]


def test_meetings_not_finished_wait_and_end_date_plus_grace_counts(scenario: Scenario) -> None:
    meeting_id, _ = scenario.finished_meeting(count=1, end=False)
    scenario.deliverer.run_once()
    assert webhook_rows() == [] and scenario.receiver.deliveries == []
    # end_date passed more than the grace period ago: finished even without EndCall.
    past = int(time.time()) - 601
    Meeting.update(start_date=past - 3600, end_date=past).where(Meeting.id == meeting_id).execute()
    scenario.deliverer.run_once()
    assert scenario.body(0)["meeting"]["_id"] == meeting_id


def test_retry_on_500_keeps_the_webhook_id(scenario: Scenario) -> None:
    row = scenario.first_attempt(Reply(500))
    assert (row.status, row.attempts, row.last_error) == (
        "scheduled",
        1,
        "retrying: HTTP 500: an error",
    )
    wait = (row.next_attempt_at - clock.now()).total_seconds()
    assert 3 <= wait <= 6  # 5 s ±20% for the first retry
    Outbox.update(next_attempt_at=clock.now()).where(Outbox.id == row.id).execute()
    scenario.deliverer.run_once()
    first, second = scenario.receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert scenario.body(0)["meeting"] == scenario.body(1)["meeting"]
    assert ids(scenario.body(0)) == ids(scenario.body(1))
    assert webhook_rows()[0].status == "sent"


def test_410_turns_the_webhook_off(scenario: Scenario) -> None:
    row = scenario.first_attempt(Reply(410))
    assert row.status == "failed" and "410" in row.last_error
    settings = webhook_settings.load()
    assert settings.enabled is False and "410 Gone" in settings.disabled_reason
    # No further deliveries while it is off.
    scenario.finished_meeting(count=1)
    scenario.deliverer.run_once()
    time.sleep(0.3)
    assert len(scenario.receiver.deliveries) == 1


def test_redirects_are_not_followed(scenario: Scenario) -> None:
    elsewhere = f"http://127.0.0.1:{scenario.receiver.port}/elsewhere"
    row = scenario.first_attempt(Reply(302, {"Location": elsewhere}))
    time.sleep(0.3)
    assert [d.path for d in scenario.receiver.deliveries] == ["/hooks/recordings"]
    assert row.status == "scheduled" and "redirect (not followed)" in row.last_error


def test_retry_after_is_honoured(scenario: Scenario) -> None:
    row = scenario.first_attempt(Reply(503, {"Retry-After": "7200"}))
    assert 7190 <= (row.next_attempt_at - clock.now()).total_seconds() <= 7200


def test_a_slow_receiver_times_out_and_is_retried(scenario: Scenario) -> None:
    row = scenario.first_attempt(Reply(200, delay=2.0), timeout=0.5)
    assert row.status == "scheduled" and "network error" in row.last_error


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/hooks",
        "http://localhost:{port}/hooks",
        "http://[::1]:{port}/x",
        "http://[::ffff:127.0.0.1]:{port}/x",
        "http://10.0.0.1/hooks",
        "http://192.168.0.10/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[fd00::1]/x",
        "http://0.0.0.0:{port}/",
    ],
)
def test_non_public_addresses_are_refused_without_the_allow_list(
    url: str, scenario: Scenario
) -> None:
    webhook_settings.update(url=url.format(port=scenario.receiver.port), enabled=True)
    row = scenario.first_attempt(allowed=())
    assert row.status == "failed" and row.last_error.startswith("refused:")
    assert scenario.receiver.deliveries == []


def test_rotation_signs_with_both_secrets(scenario: Scenario) -> None:
    new = webhook_settings.rotate_secret()
    scenario.first_attempt()
    [got] = scenario.receiver.wait_for(1)
    assert got.headers["webhook-signature"].count("v1,") == 2
    for key in (new, scenario.secret):
        Webhook(key).verify(got.body, got.headers)
    # Retiring the previous secret at once: the next delivery carries one signature.
    newest = webhook_settings.rotate_secret(previous_valid_seconds=0)
    scenario.finished_meeting(count=1)
    scenario.deliverer.run_once()
    later: Delivery = scenario.receiver.wait_for(2)[1]
    assert later.headers["webhook-signature"].count("v1,") == 1
    Webhook(newest).verify(later.body, later.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(later.body, later.headers)


def test_a_deliverer_without_a_webhook_sender_leaves_webhook_rows_alone(
    scenario: Scenario,
) -> None:
    meeting_settings.update({"recording_email": False})  # webhook rows only
    scenario.finished_meeting(count=1)
    recording_webhooks.schedule_due(600)
    mail_only = email_loop(mailer.from_settings(None, scenario.tmp_path / "m"), worker_id="mail")
    assert mail_only.run_once() == 0  # not claimed (and so not spun on)
    assert outbox.seconds_until_due(mail_only.kinds) is None
    [row] = webhook_rows()
    assert (row.status, row.attempts) == ("scheduled", 0)
    scenario.deliverer.run_once()
    scenario.receiver.wait_for(1)
    assert webhook_rows()[0].status == "sent"


def test_two_server_processes_deliver_each_meeting_once(
    postgres: PgDatabase, scenario: Scenario
) -> None:
    meetings = [scenario.finished_meeting(count=1)[0] for _ in range(12)]
    processes = []
    for n in range(2):
        env = {
            **os.environ,
            "DATABASE_URL": postgres.url,
            "GRPC_PORT": str(free_port("127.0.0.1")),
            "DATA_DIR": str(scenario.tmp_path / f"p{n}"),
            "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
            "DELIVERY_POLL_SECONDS": "0.2",
            "WORKER_ID": f"p{n}",
        }
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "server"],
                env=env,
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    try:
        scenario.receiver.wait_for(len(meetings), timeout=30)
        time.sleep(1.0)  # would any duplicate still arrive?
        got = scenario.receiver.deliveries
        delivered = sorted(json.loads(d.body)["meeting"]["_id"] for d in got)
        assert delivered == sorted(meetings)  # each once: 0 lost, 0 duplicates
        assert len({d.headers["webhook-id"] for d in got}) == len(meetings)
        assert Recording.select().where(Recording.reported_by.is_null()).count() == 0
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=20)
