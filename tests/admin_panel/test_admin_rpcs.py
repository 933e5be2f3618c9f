"""The admin panel's RPCs over gRPC: the admin key, meeting search and detail, webhook
deliveries and re-sending one."""

from __future__ import annotations

import functools
import time
from typing import Any

import grpc

from meetings.v1 import admin_pb2 as pb
from meetings.v1 import recordings_pb2 as rpb
from meetings.v1 import recordings_pb2_grpc
from server.domain import admin_panel, service_keys
from server.storage import outbox
from server.storage.models import Outbox
from tests.conftest import Account, admin_metadata
from tests.rpc_helpers import create, m_id, rpc_error
from tests.test_recordings import upload


def names(page: pb.AdminMeetingPage) -> list[str]:
    return [item.name for item in page.items]


def test_every_new_rpc_needs_the_admin_key(
    admin: Any, admin_key: str, accounts: dict[str, Account]
) -> None:
    calls = [
        lambda md: admin.SearchMeetings(pb.SearchMeetingsRequest(), metadata=md),
        lambda md: admin.GetMeetingDetail(
            pb.GetMeetingDetailRequest(meeting_id="f" * 24), metadata=md
        ),
        lambda md: admin.ListWebhookDeliveries(pb.ListWebhookDeliveriesRequest(), metadata=md),
        lambda md: admin.ResendWebhookDelivery(
            pb.ResendWebhookDeliveryRequest(id="1"), metadata=md
        ),
    ]
    for call in calls:
        for metadata in (
            (),
            admin_metadata("admin_wrong"),
            (("cb-token", accounts["host"].token),),
        ):
            error = rpc_error(functools.partial(call, metadata))
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert (
        admin.SearchMeetings(pb.SearchMeetingsRequest(), metadata=admin_metadata(admin_key)).total
        == 0
    )


def test_search_filters_and_paging(
    admin: Any, admin_key: str, accounts: dict[str, Account], meeting_stub: Any
) -> None:
    host, other = accounts["host"], accounts["stranger"]
    made = {}
    for i, (who, name) in enumerate(
        [
            (host, "Weekly sync"),
            (host, "Board 100%_review"),
            (other, "weekly planning"),
            (other, "Retro"),
        ]
    ):
        made[name] = m_id(
            create(meeting_stub, who, name=name, start_date=1000 * (i + 1), end_date=99999)
        )
    md = admin_metadata(admin_key)

    def search(**fields: Any) -> pb.AdminMeetingPage:
        page: pb.AdminMeetingPage = admin.SearchMeetings(
            pb.SearchMeetingsRequest(**fields), metadata=md
        )
        return page

    everything = search()
    assert names(everything) == ["Retro", "weekly planning", "Board 100%_review", "Weekly sync"]
    assert everything.total == 4 and everything.limit == admin_panel.DEFAULT_LIMIT
    assert names(search(name="WEEKLY")) == ["weekly planning", "Weekly sync"]
    # Typed text is matched literally: % and _ are no wildcards.
    assert names(search(name="0%_")) == ["Board 100%_review"]
    assert names(search(name="%")) == ["Board 100%_review"]
    assert names(search(name=made["Retro"])) == ["Retro"]
    assert names(search(host="HOST")) == ["Board 100%_review", "Weekly sync"]
    assert names(search(host=str(other.user_id))) == ["Retro", "weekly planning"]
    assert names(search(host="nobody")) == []
    assert names(search(start_from=2000, start_to=3000)) == [
        "weekly planning",
        "Board 100%_review",
    ]
    assert names(search(name="weekly", host="host", start_to=1000)) == ["Weekly sync"]
    first = search(limit=3)
    second = search(limit=3, offset=3)
    assert (len(first.items), first.total, second.total) == (3, 4, 4)
    assert names(first) + names(second) == names(everything)
    summary = search(name="Retro").items[0]
    assert (summary.host_login, summary.host_id) == ("stranger", other.user_id)
    assert (summary.attendees_count, summary.recordings_count, summary.record) == (0, 0, False)
    error = rpc_error(lambda: search(limit=101))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_meeting_detail_shows_recordings_and_deliveries(
    admin: Any, admin_key: str, accounts: dict[str, Account], meeting_stub: Any, channel: Any
) -> None:
    host = accounts["host"]
    meeting_id = m_id(
        create(
            meeting_stub,
            host,
            name="Detailed",
            chat=True,
            notify=True,
            attendees=[{"id": accounts["attendee"].user_id}, {"email": "guest@example.org"}],
        )
    )
    media = recordings_pb2_grpc.MediaServiceStub(channel)
    media_key = service_keys.issue(service_keys.MEDIA)
    upload(media, media_key, meeting_id, data=b"x" * 100)
    media.EndCall(
        rpb.EndCallRequest(meeting_id=meeting_id), metadata=(("cb-service-key", media_key),)
    )
    detail = admin.GetMeetingDetail(
        pb.GetMeetingDetailRequest(meeting_id=meeting_id), metadata=admin_metadata(admin_key)
    )
    assert detail.meeting.name == "Detailed" and detail.host_login == "host"
    assert detail.host_email == "host@example.com"
    assert detail.meeting.chat_dialog_id
    assert [a.email for a in detail.meeting.attendees] == ["", "guest@example.org"]
    assert detail.call_ended_at.endswith("Z")
    [recording] = detail.recordings
    assert "/recordings/" in recording.download_url and "signature=" in recording.download_url
    [email] = detail.deliveries
    assert (email.kind, email.topic, email.status, email.attempts) == (
        "email",
        "invitation",
        "scheduled",
        0,
    )
    assert {r.email for r in email.recipients} >= {"guest@example.org", "host@example.com"}
    for missing in ("f" * 24, "not-an-id"):
        error = rpc_error(
            functools.partial(
                admin.GetMeetingDetail,
                pb.GetMeetingDetailRequest(meeting_id=missing),
                metadata=admin_metadata(admin_key),
            )
        )
        assert error.code() == grpc.StatusCode.NOT_FOUND


def _webhook_row(meeting_id: str, n: int, status: str) -> int:
    row_id = outbox.enqueue(
        kind=outbox.Kind.WEBHOOK,
        topic="recordings_ready",
        meeting_id=meeting_id,
        dedupe_key=f"recordings_ready:{meeting_id}:{n}",
        payload={"recording_ids": []},
        recipients=[],
        status=outbox.Status(status),
        reason="HTTP 500: an error" if status == "failed" else None,
    )
    assert row_id is not None
    return row_id


def test_deliveries_newest_first_and_resend(
    admin: Any, admin_key: str, accounts: dict[str, Account], meeting_stub: Any
) -> None:
    meeting_id = m_id(create(meeting_stub, accounts["host"]))
    failed = _webhook_row(meeting_id, 1, "failed")
    sent = _webhook_row(meeting_id, 2, "sent")
    sending = _webhook_row(meeting_id, 3, "sending")
    md = admin_metadata(admin_key)
    page = admin.ListWebhookDeliveries(pb.ListWebhookDeliveriesRequest(), metadata=md)
    assert [d.id for d in page.items] == [str(sending), str(sent), str(failed)]
    assert page.total == 3 and page.items[2].last_error == "HTTP 500: an error"
    assert page.items[2].webhook_id == f"msg_recordings_ready_{meeting_id}_1"
    second = admin.ListWebhookDeliveries(
        pb.ListWebhookDeliveriesRequest(limit=2, offset=2), metadata=md
    )
    assert [d.id for d in second.items] == [str(failed)] and second.total == 3

    # Not sent: the same row, due now.
    before = time.time()
    again = admin.ResendWebhookDelivery(
        pb.ResendWebhookDeliveryRequest(id=str(failed)), metadata=md
    )
    assert (again.id, again.status) == (str(failed), "scheduled")
    row = Outbox.get_by_id(failed)
    assert (
        row.next_attempt_at.timestamp() <= time.time() and row.updated_at.timestamp() >= before - 1
    )
    # Sent: a copy with a new webhook-id; copies of copies stay distinct.
    copy = admin.ResendWebhookDelivery(pb.ResendWebhookDeliveryRequest(id=str(sent)), metadata=md)
    copy2 = admin.ResendWebhookDelivery(pb.ResendWebhookDeliveryRequest(id=str(sent)), metadata=md)
    assert copy.id not in (str(sent), copy2.id) and copy.status == "scheduled"
    assert copy.webhook_id == f"msg_recordings_ready_{meeting_id}_2_resend_1"
    assert copy2.webhook_id.endswith("_resend_2")
    assert Outbox.get_by_id(sent).status == "sent"
    busy = rpc_error(
        lambda: admin.ResendWebhookDelivery(
            pb.ResendWebhookDeliveryRequest(id=str(sending)), metadata=md
        )
    )
    assert busy.code() == grpc.StatusCode.INVALID_ARGUMENT
    for missing in ("999999", "abc", ""):
        error = rpc_error(
            functools.partial(
                admin.ResendWebhookDelivery,
                pb.ResendWebhookDeliveryRequest(id=missing),
                metadata=md,
            )
        )
        assert error.code() == grpc.StatusCode.NOT_FOUND
