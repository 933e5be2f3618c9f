"""Who gets which email when a meeting is created, changed or deleted, and what it says."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import grpc

from meetings.v1 import meetings_pb2 as pb
from server.delivery import loop
from server.domain import auth, meeting_settings
from tests.conftest import REPO, Account, PgDatabase
from tests.notifications.conftest import SmtpServer, deliver_all, outbox_rows
from tests.rpc_helpers import create, m_id, rpc_error, update

# Tue 15 Jan 2030 08:00 UTC: 10:00 in Riga (EET, UTC+2).
START = 1894694400
END = START + 3600
RIGA = {"offset": 120, "name": "Europe/Riga"}


def meeting(stub: Any, host: Account, **fields: Any) -> pb.Meeting:
    return create(stub, host, **{"start_date": START, "end_date": END, "timezone": RIGA, **fields})


def notifications(stub: Any, account: Account, meeting_id: str) -> list[pb.Notification]:
    request = pb.ListMeetingNotificationsRequest(id=meeting_id)
    return list(stub.ListMeetingNotifications(request, metadata=account.metadata))


def test_create_with_notify_sends_everyone_an_invitation(
    meeting_stub: Any,
    accounts: dict[str, Account],
    smtp: SmtpServer,
    deliverer: loop.DeliveryLoop,
) -> None:
    meeting_settings.update({"meeting_url_template": "https://meet.test/room/%s?join=1"})
    host, attendee, mailee = accounts["host"], accounts["attendee"], accounts["mailee"]
    created = meeting(
        meeting_stub,
        host,
        notify=True,
        attendees=[
            {"id": attendee.user_id},  # mailed at the account's email
            {"email": "guest@example.org"},
            {"id": mailee.user_id, "email": "other@example.org"},  # the given email wins
            {"email": "HOST@example.com"},  # the host, once
        ],
    )
    deliver_all(deliverer)

    [mail] = smtp.received
    meeting_id = m_id(created)
    everyone = [
        "host@example.com",
        "attendee@example.com",
        "guest@example.org",
        "other@example.org",
    ]
    assert mail.recipients == everyone
    assert mail.subject == "Invitation: Friday weekly sync @ Tue 15 Jan 2030 10:00 EET"
    assert mail.message["From"] == "Meetings <no-reply@example.com>"
    assert mail.sender == "no-reply@example.com"
    link = f"https://meet.test/room/{meeting_id}?join=1"
    text = mail.part("text/plain")
    assert "Tue 15 Jan 2030 10:00 - 11:00 (Europe/Riga, UTC+02:00)" in text
    assert "Tue 15 Jan 2030 08:00 - 09:00 UTC" in text
    assert "Organizer: Host <host@example.com>" in text
    assert "Attendee <attendee@example.com>, guest@example.org, Mailee <other@example.org>" in text
    assert f"Join: {link}" in text
    page = mail.part("text/html")
    assert f'href="https://meet.test/room/{meeting_id}?join=1"' in page
    assert "10:00 - 11:00 (Europe/Riga, UTC+02:00)" in page

    calendar = mail.calendar()
    event = mail.event()
    assert str(calendar["METHOD"]) == "REQUEST"
    assert str(event["UID"]) == f"{meeting_id}@meetings-api"
    assert int(event["SEQUENCE"]) == 0
    assert event.decoded("DTSTART") == datetime.fromtimestamp(START, UTC)
    assert event.decoded("DTEND") == datetime.fromtimestamp(END, UTC)
    assert str(event["SUMMARY"]) == "Friday weekly sync"
    assert str(event["URL"]) == link
    assert str(event["ORGANIZER"]) == "mailto:host@example.com"
    attendees = sorted(str(a) for a in event["ATTENDEE"])
    assert attendees == sorted(f"mailto:{a}" for a in [*everyone[1:], "HOST@example.com"])

    [row] = notifications(meeting_stub, host, meeting_id)
    assert (row.topic, row.status, row.attempts) == ("invitation", "sent", 1)
    assert row.sent_at.string_value.endswith("Z")
    assert [r.status for r in row.recipients] == ["sent"] * 4


def test_create_without_notify_sends_nothing(
    meeting_stub: Any, accounts: dict[str, Account], pool: Any
) -> None:
    meeting(meeting_stub, accounts["host"], attendees=[{"id": accounts["attendee"].user_id}])
    meeting(
        meeting_stub,
        accounts["host"],
        notify=False,
        notify_before={"metric": "hours", "value": 1},
    )
    assert outbox_rows(pool) == []


def test_notify_turned_on_invites_everyone(
    meeting_stub: Any,
    accounts: dict[str, Account],
    smtp: SmtpServer,
    deliverer: loop.DeliveryLoop,
) -> None:
    host = accounts["host"]
    created = meeting(meeting_stub, host, attendees=[{"id": accounts["attendee"].user_id}])
    update(meeting_stub, host, m_id(created), notify=True)
    deliver_all(deliverer)
    [mail] = smtp.received
    assert mail.recipients == ["host@example.com", "attendee@example.com"]
    assert mail.subject.startswith("Invitation: ")
    assert int(mail.event()["SEQUENCE"]) == 1


def test_moved_meeting_sends_everyone_an_update(
    meeting_stub: Any,
    accounts: dict[str, Account],
    smtp: SmtpServer,
    deliverer: loop.DeliveryLoop,
) -> None:
    host = accounts["host"]
    attendees = [{"id": accounts["attendee"].user_id}, {"email": "guest@example.org"}]
    created = meeting(meeting_stub, host, notify=True, attendees=attendees)
    deliver_all(deliverer)
    # Summer time: Mon 15 Jul 2030 07:00 UTC is 10:00 in Riga (EEST, UTC+3).
    summer = 1910329200
    update(meeting_stub, host, m_id(created), start_date=summer, end_date=summer + 5400)
    deliver_all(deliverer)

    first, moved = smtp.received
    assert moved.recipients == first.recipients
    assert moved.subject == "Updated: Friday weekly sync now @ Mon 15 Jul 2030 10:00 EEST"
    assert "Mon 15 Jul 2030 10:00 - 11:30 (Europe/Riga, UTC+03:00)" in moved.part("text/plain")
    assert "Mon 15 Jul 2030 07:00 - 08:30 UTC" in moved.part("text/plain")
    before, after = first.event(), moved.event()
    assert str(after["UID"]) == str(before["UID"])
    assert (int(before["SEQUENCE"]), int(after["SEQUENCE"])) == (0, 1)
    assert after.decoded("DTSTART") == datetime.fromtimestamp(summer, UTC)


def test_added_attendees_alone_are_invited(
    meeting_stub: Any,
    accounts: dict[str, Account],
    smtp: SmtpServer,
    deliverer: loop.DeliveryLoop,
) -> None:
    host, attendee, mailee = accounts["host"], accounts["attendee"], accounts["mailee"]
    created = meeting(meeting_stub, host, notify=True, attendees=[{"id": attendee.user_id}])
    deliver_all(deliverer)
    update(
        meeting_stub,
        host,
        m_id(created),
        attendees=[{"id": attendee.user_id}, {"email": "new@example.org"}, {"id": mailee.user_id}],
    )
    # Neither a rename nor a removal mails anyone.
    update(meeting_stub, host, m_id(created), name="Renamed")
    update(meeting_stub, host, m_id(created), attendees=[{"id": mailee.user_id}])
    deliver_all(deliverer)

    first, added = smtp.received
    assert first.recipients == ["host@example.com", "attendee@example.com"]
    assert added.recipients == ["new@example.org", "Mailee@Example.com"]
    assert added.message["To"] == "new@example.org, Mailee@Example.com"
    assert added.subject.startswith("Invitation: Friday weekly sync")
    assert int(added.event()["SEQUENCE"]) == 1
    # The invitation lists everyone who attends, not only its recipients.
    assert len(added.event()["ATTENDEE"]) == 3


def test_delete_sends_a_cancellation(
    meeting_stub: Any,
    accounts: dict[str, Account],
    smtp: SmtpServer,
    deliverer: loop.DeliveryLoop,
    pool: Any,
) -> None:
    host = accounts["host"]
    created = meeting(
        meeting_stub, host, notify=True, attendees=[{"id": accounts["attendee"].user_id}]
    )
    update(meeting_stub, host, m_id(created), name="Sync (moved room)")
    meeting_stub.DeleteMeeting(pb.DeleteMeetingRequest(id=m_id(created)), metadata=host.metadata)
    quiet = meeting(meeting_stub, host, attendees=[{"id": accounts["attendee"].user_id}])
    meeting_stub.DeleteMeeting(pb.DeleteMeetingRequest(id=m_id(quiet)), metadata=host.metadata)
    deliver_all(deliverer)

    invitation, cancellation = smtp.received
    assert cancellation.recipients == ["host@example.com", "attendee@example.com"]
    assert cancellation.subject == "Cancelled: Sync (moved room) @ Tue 15 Jan 2030 10:00 EET"
    assert "This meeting has been cancelled." in cancellation.part("text/plain")
    assert "Join:" not in cancellation.part("text/plain")
    assert str(cancellation.calendar()["METHOD"]) == "CANCEL"
    event = cancellation.event()
    assert str(event["STATUS"]) == "CANCELLED"
    assert str(event["UID"]) == str(invitation.event()["UID"])
    # Version 2 after the rename: its REQUEST would be SEQUENCE 1, the CANCEL comes after.
    assert int(event["SEQUENCE"]) == 2
    assert [row["topic"] for row in outbox_rows(pool)] == ["invitation", "cancellation"]


def test_attendees_without_an_address_are_skipped_and_shown_to_the_host(
    meeting_stub: Any,
    accounts: dict[str, Account],
    smtp: SmtpServer,
    deliverer: loop.DeliveryLoop,
) -> None:
    host = accounts["host"]
    no_email = auth.create_user("silent", "correct horse battery")
    created = meeting(
        meeting_stub,
        host,
        notify=True,
        attendees=[{"id": no_email}, {"id": 999_999}, {"id": accounts["attendee"].user_id}],
    )
    deliver_all(deliverer)
    [mail] = smtp.received
    assert mail.recipients == ["host@example.com", "attendee@example.com"]

    [row] = notifications(meeting_stub, host, m_id(created))
    assert row.status == "sent"
    found = [(r.email, r.user_id, r.status, r.detail) for r in row.recipients]
    assert found == [
        ("host@example.com", host.user_id, "sent", ""),
        ("", no_email, "skipped", f"user {no_email} has no email"),
        ("", 999_999, "skipped", "user 999999 does not exist"),
        ("attendee@example.com", accounts["attendee"].user_id, "sent", ""),
    ]


def test_only_the_host_sees_the_notifications(
    meeting_stub: Any, accounts: dict[str, Account]
) -> None:
    host, attendee = accounts["host"], accounts["attendee"]
    created = meeting(
        meeting_stub,
        host,
        notify=True,
        notify_before={"metric": "hours", "value": 2},
        attendees=[{"id": attendee.user_id}],
    )
    rows = notifications(meeting_stub, host, m_id(created))
    assert [(r.topic, r.status) for r in rows] == [
        ("invitation", "scheduled"),
        ("reminder", "scheduled"),
    ]
    assert rows[1].due_at == START - 2 * 3600
    assert rows[1].reason.HasField("null_value")
    denied = rpc_error(lambda: notifications(meeting_stub, attendee, m_id(created)))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    hidden = rpc_error(lambda: notifications(meeting_stub, accounts["stranger"], m_id(created)))
    assert hidden.code() == grpc.StatusCode.NOT_FOUND


def test_settings_changed_with_the_cli_apply_to_the_next_email(
    postgres: PgDatabase,
    meeting_stub: Any,
    accounts: dict[str, Account],
    smtp: SmtpServer,
    deliverer: loop.DeliveryLoop,
) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DATABASE_URL": postgres.url}
        return subprocess.run(
            [sys.executable, "-m", "server.cli", "settings", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )

    shown = cli()
    assert shown.returncode == 0, shown.stderr
    assert "meeting_url_template = https://meet.example.com/%s" in shown.stdout
    bad = cli("--meeting-url-template", "ftp://x/%s/%s", "--sender", "nobody")
    assert bad.returncode == 1
    assert "meeting_url_template: must be an http:// or https:// URL" in bad.stderr
    assert "sender: must be an email address" in bad.stderr
    changed = cli(
        "--meeting-url-template", "https://video.example.net/j/%s", "--sender", "Ops <ops@x.org>"
    )
    assert changed.returncode == 0, changed.stderr
    assert "sender = Ops <ops@x.org>" in changed.stdout

    created = meeting(meeting_stub, accounts["host"], notify=True)
    deliver_all(deliverer)
    [mail] = smtp.received
    assert mail.message["From"] == "Ops <ops@x.org>"
    assert mail.sender == "ops@x.org"
    assert f"Join: https://video.example.net/j/{m_id(created)}" in mail.part("text/plain")
    assert mail.message_id.endswith("@x.org>")
