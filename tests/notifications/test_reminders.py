"""Reminders: due notify_before ahead of the start, moved with the meeting, never sent stale."""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

from meetings.v1 import meetings_pb2 as pb
from server.delivery import loop, mailer
from tests.conftest import Account
from tests.delivery_helpers import email_loop
from tests.notifications.conftest import SmtpServer, deliver_all, make_due, outbox_rows
from tests.rpc_helpers import create, m_id, update

# Tue 15 Jan 2030 08:00 UTC (10:00 in Riga).
START = 1894694400
HOUR = 3600
RIGA = {"offset": 120, "name": "Europe/Riga"}


def with_reminder(stub: Any, host: Account, attendee: Account, **fields: Any) -> pb.Meeting:
    values = {
        "start_date": START,
        "end_date": START + HOUR,
        "timezone": RIGA,
        "notify": True,
        "notify_before": {"metric": "hours", "value": 1},
        "attendees": [{"id": attendee.user_id}],
        **fields,
    }
    return create(stub, host, **values)


def reminders(pool: Any, meeting_id: str) -> list[tuple[str, float, str | None]]:
    """(status, due unix seconds, reason) of the meeting's reminder rows, oldest first."""
    return [
        (row["status"], row["next_attempt_at"].timestamp(), row["last_error"])
        for row in outbox_rows(pool, meeting_id)
        if row["topic"] == "reminder"
    ]


def test_reminder_goes_out_notify_before_ahead(
    meeting_stub: Any,
    accounts: dict[str, Account],
    smtp: SmtpServer,
    deliverer: loop.DeliveryLoop,
    pool: Any,
) -> None:
    created = with_reminder(meeting_stub, accounts["host"], accounts["attendee"])
    deliver_all(deliverer)
    assert smtp.subjects() == ["Invitation: Friday weekly sync @ Tue 15 Jan 2030 10:00 EET"]
    assert reminders(pool, m_id(created)) == [("scheduled", START - HOUR, None)]

    make_due(pool)
    deliver_all(deliverer)
    reminder = smtp.received[1]
    assert reminder.subject == "Reminder: Friday weekly sync @ Tue 15 Jan 2030 10:00 EET"
    assert reminder.recipients == ["host@example.com", "attendee@example.com"]
    assert "This meeting starts soon." in reminder.part("text/plain")
    assert str(reminder.calendar()["METHOD"]) == "REQUEST"
    assert reminders(pool, m_id(created))[0][0] == "sent"


def test_reminder_whose_time_has_passed_at_creation_is_not_sent(
    meeting_stub: Any,
    accounts: dict[str, Account],
    smtp: SmtpServer,
    deliverer: loop.DeliveryLoop,
    pool: Any,
) -> None:
    soon = int(time.time()) + 600  # in 10 minutes, with a reminder 1 hour ahead
    created = with_reminder(
        meeting_stub, accounts["host"], accounts["attendee"], start_date=soon, end_date=soon + 60
    )
    make_due(pool)
    deliver_all(deliverer)
    assert [s.split(":")[0] for s in smtp.subjects()] == ["Invitation"]
    [(status, due, reason)] = reminders(pool, m_id(created))
    assert (status, due) == ("cancelled", soon - HOUR)
    assert reason is not None and reason.startswith("not sent: its time (")


def test_moving_the_meeting_moves_its_reminder(
    meeting_stub: Any,
    accounts: dict[str, Account],
    smtp: SmtpServer,
    deliverer: loop.DeliveryLoop,
    pool: Any,
) -> None:
    host = accounts["host"]
    created = with_reminder(meeting_stub, host, accounts["attendee"])
    later = START + 24 * HOUR
    update(meeting_stub, host, m_id(created), start_date=later, end_date=later + HOUR)
    update(meeting_stub, host, m_id(created), notify_before={"metric": "minutes", "value": 15})
    assert reminders(pool, m_id(created)) == [
        (
            "cancelled",
            START - HOUR,
            "the meeting or notify_before changed: now due 2030-01-16T07:00:00.000Z",
        ),
        (
            "cancelled",
            later - HOUR,
            "the meeting or notify_before changed: now due 2030-01-16T07:45:00.000Z",
        ),
        ("scheduled", later - 15 * 60, None),
    ]
    make_due(pool)
    deliver_all(deliverer)
    found = [s for s in smtp.subjects() if s.startswith("Reminder")]
    assert found == ["Reminder: Friday weekly sync @ Wed 16 Jan 2030 10:00 EET"]


def test_notify_off_cancels_the_reminder_and_on_again_restores_it(
    meeting_stub: Any,
    accounts: dict[str, Account],
    smtp: SmtpServer,
    deliverer: loop.DeliveryLoop,
    pool: Any,
) -> None:
    host = accounts["host"]
    created = with_reminder(meeting_stub, host, accounts["attendee"])
    update(meeting_stub, host, m_id(created), notify=False)
    assert reminders(pool, m_id(created)) == [
        ("cancelled", START - HOUR, "notifications were turned off")
    ]
    update(meeting_stub, host, m_id(created), notify=True)
    assert reminders(pool, m_id(created)) == [("scheduled", START - HOUR, None)]
    make_due(pool)
    deliver_all(deliverer)
    assert sum(s.startswith("Reminder") for s in smtp.subjects()) == 1
    # Moving back to a time whose reminder went out already does not remind again.
    update(meeting_stub, host, m_id(created), start_date=START + HOUR, end_date=START + 2 * HOUR)
    update(meeting_stub, host, m_id(created), start_date=START, end_date=START + HOUR)
    make_due(pool)
    deliver_all(deliverer)
    assert sum(s.startswith("Reminder") for s in smtp.subjects()) == 1


def test_a_reminder_claimed_before_the_meeting_moved_is_not_sent(
    meeting_stub: Any,
    accounts: dict[str, Account],
    smtp: SmtpServer,
    deliverer: loop.DeliveryLoop,
    pool: Any,
) -> None:
    host = accounts["host"]
    created = with_reminder(meeting_stub, host, accounts["attendee"], notify=False)
    moved = with_reminder(meeting_stub, host, accounts["attendee"], notify=False)
    quiet = with_reminder(meeting_stub, host, accounts["attendee"], notify=False)
    gone = with_reminder(meeting_stub, host, accounts["attendee"], notify=False)
    for meeting in (created, moved, quiet, gone):
        update(meeting_stub, host, m_id(meeting), notify=True)
    deliver_all(deliverer)  # the four invitations
    make_due(pool)

    # A sender claims the four due reminders; before it sends them, three meetings change.
    claimed = deliverer.claim()
    assert sorted(job.topic for job in claimed) == ["reminder"] * 4
    later = START + 2 * HOUR
    update(meeting_stub, host, m_id(moved), start_date=later, end_date=later + HOUR)
    update(meeting_stub, host, m_id(quiet), notify=False)
    meeting_stub.DeleteMeeting(pb.DeleteMeetingRequest(id=m_id(gone)), metadata=host.metadata)
    for job in claimed:
        deliverer.deliver(job)

    sent = [r for r in smtp.received if r.subject.startswith("Reminder")]
    assert [r.subject for r in sent] == ["Reminder: Friday weekly sync @ Tue 15 Jan 2030 10:00 EET"]
    assert [row[0] for row in reminders(pool, m_id(created))] == ["sent"]
    assert [row[0] for row in reminders(pool, m_id(moved))] == ["cancelled", "scheduled"]
    assert [row[0] for row in reminders(pool, m_id(quiet))] == ["cancelled"]
    assert [row[0] for row in reminders(pool, m_id(gone))] == ["cancelled"]

    # The moved meeting gets exactly one reminder, for its new time.
    make_due(pool)
    deliver_all(deliverer)
    sent = [r for r in smtp.received if r.subject.startswith("Reminder")]
    assert [r.subject for r in sent[1:]] == [
        "Reminder: Friday weekly sync @ Tue 15 Jan 2030 12:00 EET"
    ]


def test_reminders_are_on_time(
    meeting_stub: Any,
    accounts: dict[str, Account],
    smtp: SmtpServer,
    pool: Any,
    postgres: Any,
) -> None:
    """The loop as it runs in the server (a thread, LISTEN/NOTIFY): lateness under a second."""
    from server.storage import database

    sender = email_loop(
        mailer.SmtpMailer(mailer.parse_url(smtp.url)),
        worker_id="on-time",
        poll_seconds=1.0,
        listen_params=database.connection_params(postgres.url),
    )
    stop = threading.Event()
    thread = threading.Thread(target=sender.run, args=(stop,), daemon=True)
    thread.start()
    try:
        host = accounts["host"]
        base = int(time.time()) + 2
        due = []
        for i in range(12):
            start = base + i // 3  # three reminders per second, over four seconds
            due.append(start)
            create(
                meeting_stub,
                host,
                start_date=start,
                end_date=start + 60,
                notify=True,
                notify_before={"metric": "minutes", "value": 0},
            )
        received = smtp.wait_for(24, timeout=15)
    finally:
        stop.set()
        thread.join(timeout=10)
    got = sorted(r.at for r in received if r.subject.startswith("Reminder"))
    assert len(got) == 12
    late = sorted(at - when for at, when in zip(got, sorted(due), strict=True))
    p50 = statistics.median(late)
    p99 = late[-1]
    print(f"reminder lateness: p50 {p50 * 1000:.0f} ms, max {p99 * 1000:.0f} ms")
    assert late[0] >= -0.05, "a reminder went out early"
    assert p99 < 1.0
