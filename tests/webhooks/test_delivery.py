"""The recording-done webhook end to end: real gRPC server, real outbox and delivery loop, a
real HTTP receiver on 127.0.0.1, signatures checked with the reference verifier."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import grpc
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from meetings.v1 import recordings_pb2 as rpb
from meetings.v1 import recordings_pb2_grpc
from server import clock, delivery, mailer, service_keys, webhook_delivery, webhooks
from server.outbox import Outbox
from server.recordings import Recording
from tests.conftest import REPO, Account, PgDatabase
from tests.rpc_helpers import create, m_id
from tests.test_process import free_port
from tests.test_recordings import upload
from tests.webhooks.conftest import Receiver, Reply

LOOPBACK = webhooks.parse_networks("127.0.0.0/8, ::1/128")


@pytest.fixture
def media(channel: grpc.Channel, db: Any) -> tuple[Any, str]:
    return recordings_pb2_grpc.MediaServiceStub(channel), service_keys.issue(service_keys.MEDIA)


@pytest.fixture
def secret(db: Any, receiver: Receiver) -> str:
    webhooks.update(url=receiver.url, enabled=True)
    return webhooks.load().active_secrets(clock.now())[0]


def make_deliverer(
    tmp_path: Path, allowed: Any = LOOPBACK, timeout: float = 5.0
) -> delivery.Deliverer:
    return delivery.Deliverer(
        mailer.from_settings(None, tmp_path / "mail"),
        worker_id="test",
        webhook_sender=webhook_delivery.WebhookSender(
            public_base_url="http://127.0.0.1:8080",
            link_ttl_seconds=3600,
            allowed_networks=allowed,
            timeout=timeout,
        ),
        webhook_grace_seconds=600,
        rand=lambda: 0.5,
    )


@pytest.fixture
def deliverer(tmp_path: Path, db: Any) -> Iterator[delivery.Deliverer]:
    yield make_deliverer(tmp_path)


def finished_meeting(
    meeting_stub: Any, host: Account, media: tuple[Any, str], count: int = 2, end: bool = True
) -> tuple[str, list[Any]]:
    stub, key = media
    meeting_id = m_id(
        create(
            meeting_stub, host, start_date=int(time.time()) - 3600, end_date=int(time.time()) + 3600
        )
    )
    made = [
        upload(
            stub,
            key,
            meeting_id,
            data=f"file {i}".encode() * 100,
            participants_ids=[host.user_id],
            duration=5.5 + i,
        )
        for i in range(count)
    ]
    if end:
        stub.EndCall(rpb.EndCallRequest(meeting_id=meeting_id), metadata=(("cb-service-key", key),))
    return meeting_id, made


def webhook_rows() -> list[Any]:
    return list(Outbox.select().where(Outbox.kind == "webhook").order_by(Outbox.id))


def make_due() -> None:
    Outbox.update(next_attempt_at=clock.now()).where(Outbox.status == "scheduled").execute()


def test_one_signed_delivery_per_finished_meeting(
    meeting_stub: Any,
    accounts: dict[str, Account],
    media: tuple[Any, str],
    secret: str,
    receiver: Receiver,
    deliverer: delivery.Deliverer,
) -> None:
    host = accounts["host"]
    meeting_id, made = finished_meeting(meeting_stub, host, media)
    deliverer.run_once()
    deliverer.run_once()
    [got] = receiver.wait_for(1)
    document = Webhook(secret).verify(got.body, got.headers)  # the reference verifier
    assert set(document) == {"meeting", "hostUser", "callRecords"}
    assert (
        document["meeting"]["_id"] == meeting_id and document["meeting"]["host_id"] == host.user_id
    )
    assert set(document["meeting"]) == {
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
    assert document["hostUser"]["id"] == host.user_id and document["hostUser"]["login"] == "host"
    assert "password_hash" not in document["hostUser"]
    records = document["callRecords"]
    assert [r["_id"] for r in records] == [getattr(m, "_id") for m in made]
    assert [r["file_uid"] for r in records] == [m.file_uid for m in made]
    assert records[1]["duration"] == 6.5 and records[0]["participants_ids"] == [host.user_id]
    query = parse_qs(urlsplit(records[0]["download_url"]).query)
    assert int(query["expires"][0]) > time.time() + 3000
    assert got.headers["content-type"] == "application/json"
    assert got.headers["webhook-id"].startswith("msg_")
    # Nothing more for that meeting...
    deliverer.run_once()
    time.sleep(0.3)
    assert len(receiver.deliveries) == 1
    # ...until another recording arrives: a delivery with just that one.
    late = upload(media[0], media[1], meeting_id, data=b"late" * 10)
    deliverer.run_once()
    second = receiver.wait_for(2)[1]
    assert [r["_id"] for r in json.loads(second.body)["callRecords"]] == [getattr(late, "_id")]
    assert second.headers["webhook-id"] != got.headers["webhook-id"]
    assert [row.status for row in webhook_rows()] == ["sent", "sent"]


def test_meetings_not_finished_wait_and_end_date_plus_grace_counts(
    meeting_stub: Any,
    accounts: dict[str, Account],
    media: tuple[Any, str],
    secret: str,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    meeting_id, _ = finished_meeting(meeting_stub, accounts["host"], media, count=1, end=False)
    deliverer = make_deliverer(tmp_path)
    deliverer.run_once()
    assert webhook_rows() == [] and receiver.deliveries == []
    # end_date passed more than the grace period ago: finished even without EndCall.
    from server.models import Meeting

    past = int(time.time()) - 601
    Meeting.update(start_date=past - 3600, end_date=past).where(Meeting.id == meeting_id).execute()
    deliverer.run_once()
    assert json.loads(receiver.wait_for(1)[0].body)["meeting"]["_id"] == meeting_id


def test_retry_on_500_keeps_the_webhook_id(
    meeting_stub: Any,
    accounts: dict[str, Account],
    media: tuple[Any, str],
    secret: str,
    receiver: Receiver,
    deliverer: delivery.Deliverer,
) -> None:
    receiver.replies.put(Reply(500))
    finished_meeting(meeting_stub, accounts["host"], media, count=1)
    deliverer.run_once()
    receiver.wait_for(1)
    [row] = webhook_rows()
    assert (row.status, row.attempts, row.last_error) == (
        "scheduled",
        1,
        "retrying: HTTP 500: an error",
    )
    wait = (row.next_attempt_at - clock.now()).total_seconds()
    assert 3 <= wait <= 6  # 5 s ±20% for the first retry
    make_due()
    deliverer.run_once()
    first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert (
        first.body == second.body
        or json.loads(first.body)["meeting"] == json.loads(second.body)["meeting"]
    )
    assert webhook_rows()[0].status == "sent"


def test_410_turns_the_webhook_off(
    meeting_stub: Any,
    accounts: dict[str, Account],
    media: tuple[Any, str],
    secret: str,
    receiver: Receiver,
    deliverer: delivery.Deliverer,
) -> None:
    receiver.replies.put(Reply(410))
    finished_meeting(meeting_stub, accounts["host"], media, count=1)
    deliverer.run_once()
    receiver.wait_for(1)
    [row] = webhook_rows()
    assert row.status == "failed" and "410" in row.last_error
    settings = webhooks.load()
    assert settings.enabled is False and "410 Gone" in settings.disabled_reason
    # No further deliveries while it is off.
    finished_meeting(meeting_stub, accounts["host"], media, count=1)
    deliverer.run_once()
    time.sleep(0.3)
    assert len(receiver.deliveries) == 1


def test_redirects_are_not_followed(
    meeting_stub: Any,
    accounts: dict[str, Account],
    media: tuple[Any, str],
    secret: str,
    receiver: Receiver,
    deliverer: delivery.Deliverer,
) -> None:
    receiver.replies.put(Reply(302, {"Location": f"http://127.0.0.1:{receiver.port}/elsewhere"}))
    finished_meeting(meeting_stub, accounts["host"], media, count=1)
    deliverer.run_once()
    receiver.wait_for(1)
    time.sleep(0.3)
    assert [d.path for d in receiver.deliveries] == ["/hooks/recordings"]
    [row] = webhook_rows()
    assert row.status == "scheduled" and "redirect (not followed)" in row.last_error


def test_retry_after_is_honoured(
    meeting_stub: Any,
    accounts: dict[str, Account],
    media: tuple[Any, str],
    secret: str,
    receiver: Receiver,
    deliverer: delivery.Deliverer,
) -> None:
    receiver.replies.put(Reply(503, {"Retry-After": "7200"}))
    finished_meeting(meeting_stub, accounts["host"], media, count=1)
    deliverer.run_once()
    receiver.wait_for(1)
    [row] = webhook_rows()
    assert 7190 <= (row.next_attempt_at - clock.now()).total_seconds() <= 7200


def test_a_slow_receiver_times_out_and_is_retried(
    meeting_stub: Any,
    accounts: dict[str, Account],
    media: tuple[Any, str],
    secret: str,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    receiver.replies.put(Reply(200, delay=2.0))
    finished_meeting(meeting_stub, accounts["host"], media, count=1)
    make_deliverer(tmp_path, timeout=0.5).run_once()
    [row] = webhook_rows()
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
    url: str,
    meeting_stub: Any,
    accounts: dict[str, Account],
    media: tuple[Any, str],
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    webhooks.update(url=url.format(port=receiver.port), enabled=True)
    finished_meeting(meeting_stub, accounts["host"], media, count=1)
    make_deliverer(tmp_path, allowed=()).run_once()
    [row] = webhook_rows()
    assert row.status == "failed" and row.last_error.startswith("refused:")
    assert receiver.deliveries == []


def test_rotation_signs_with_both_secrets(
    meeting_stub: Any,
    accounts: dict[str, Account],
    media: tuple[Any, str],
    secret: str,
    receiver: Receiver,
    deliverer: delivery.Deliverer,
) -> None:
    new = webhooks.rotate_secret()
    finished_meeting(meeting_stub, accounts["host"], media, count=1)
    deliverer.run_once()
    [got] = receiver.wait_for(1)
    assert got.headers["webhook-signature"].count("v1,") == 2
    for key in (new, secret):
        Webhook(key).verify(got.body, got.headers)
    # Retiring the previous secret at once: the next delivery carries one signature.
    newest = webhooks.rotate_secret(previous_valid_seconds=0)
    finished_meeting(meeting_stub, accounts["host"], media, count=1)
    deliverer.run_once()
    later = receiver.wait_for(2)[1]
    assert later.headers["webhook-signature"].count("v1,") == 1
    Webhook(newest).verify(later.body, later.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(later.body, later.headers)


def test_two_server_processes_deliver_each_meeting_once(
    postgres: PgDatabase,
    meeting_stub: Any,
    accounts: dict[str, Account],
    media: tuple[Any, str],
    secret: str,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    meetings = [
        finished_meeting(meeting_stub, accounts["host"], media, count=1)[0] for _ in range(12)
    ]
    processes = []
    for n in range(2):
        env = {
            **os.environ,
            "DATABASE_URL": postgres.url,
            "GRPC_PORT": str(free_port()),
            "DATA_DIR": str(tmp_path / f"p{n}"),
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
        got = receiver.wait_for(len(meetings), timeout=30)
        time.sleep(1.0)  # would any duplicate still arrive?
        got = receiver.deliveries
        delivered = sorted(json.loads(d.body)["meeting"]["_id"] for d in got)
        assert delivered == sorted(meetings)  # each once: 0 lost, 0 duplicates
        assert len({d.headers["webhook-id"] for d in got}) == len(meetings)
        assert Recording.select().where(Recording.reported_by.is_null()).count() == 0
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=20)


def test_a_deliverer_without_a_webhook_sender_leaves_webhook_rows_alone(
    meeting_stub: Any,
    accounts: dict[str, Account],
    media: tuple[Any, str],
    secret: str,
    receiver: Receiver,
    deliverer: delivery.Deliverer,
    tmp_path: Path,
) -> None:
    finished_meeting(meeting_stub, accounts["host"], media, count=1)
    webhook_delivery.schedule_due(600)
    mail_only = delivery.Deliverer(mailer.from_settings(None, tmp_path / "m"), worker_id="mail")
    assert mail_only.run_once() == 0  # not claimed (and so not spun on)
    from server import outbox

    assert outbox.seconds_until_due(mail_only.kinds) is None
    [row] = webhook_rows()
    assert (row.status, row.attempts) == ("scheduled", 0)
    deliverer.run_once()
    receiver.wait_for(1)
    assert webhook_rows()[0].status == "sent"
