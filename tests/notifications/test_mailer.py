"""SMTP outcomes (4xx retried with backoff, 5xx final, partial refusal), the URL, the sink."""

from __future__ import annotations

import mailbox
import threading
import time
from datetime import UTC, datetime
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from meetings.v1 import meetings_pb2 as pb
from server.delivery import email_sender, loop, mailer
from server.domain import emails, meeting_settings
from server.storage import outbox
from server.supervisor import free_port
from tests.conftest import Account
from tests.notifications.conftest import (
    SmtpServer,
    _Handler,
    deliver_all,
    make_due,
    outbox_rows,
)
from tests.rpc_helpers import create, m_id

START = 1894694400


def invite(stub: Any, host: Account, *emails_: str) -> pb.Meeting:
    return create(
        stub,
        host,
        start_date=START,
        end_date=START + 3600,
        notify=True,
        attendees=[{"email": address} for address in emails_],
    )


def test_a_4xx_reply_is_retried_with_backoff_then_delivered(
    meeting_stub: Any,
    accounts: dict[str, Account],
    smtp: SmtpServer,
    deliverer: loop.DeliveryLoop,
    pool: Any,
) -> None:
    smtp.data_replies = ["451 4.3.0 Try again later"]
    invite(meeting_stub, accounts["host"], "guest@example.org")
    deliver_all(deliverer)
    assert smtp.received == []
    [row] = outbox_rows(pool)
    assert (row["status"], row["attempts"]) == ("scheduled", 1)
    assert row["last_error"] == (
        "retrying host@example.com: 451 4.3.0 Try again later; "
        "guest@example.org: 451 4.3.0 Try again later"
    )
    # The first retry waits 30 s (the fixture's jitter draw is the middle of ±20%).
    assert 29 < row["due_in"] <= 30
    assert deliver_all(deliverer) == 0  # not before its time

    make_due(pool)
    deliver_all(deliverer)
    [mail] = smtp.received
    assert mail.recipients == ["host@example.com", "guest@example.org"]
    [row] = outbox_rows(pool)
    assert (row["status"], row["attempts"], row["last_error"]) == ("sent", 2, None)


def test_a_5xx_reply_fails_at_once_with_the_reason(
    meeting_stub: Any,
    accounts: dict[str, Account],
    smtp: SmtpServer,
    deliverer: loop.DeliveryLoop,
    pool: Any,
) -> None:
    smtp.data_replies = ["554 5.6.0 Message content rejected"]
    created = invite(meeting_stub, accounts["host"])
    deliver_all(deliverer)
    make_due(pool)
    assert deliver_all(deliverer) == 0
    assert smtp.received == []
    request = pb.ListMeetingNotificationsRequest(id=m_id(created))
    [row] = meeting_stub.ListMeetingNotifications(request, metadata=accounts["host"].metadata)
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.reason.string_value == (
        "refused host@example.com: 554 5.6.0 Message content rejected"
    )
    assert [(r.status, r.detail) for r in row.recipients] == [
        ("failed", "554 5.6.0 Message content rejected")
    ]


def test_only_the_refused_recipients_are_retried(
    meeting_stub: Any,
    accounts: dict[str, Account],
    smtp: SmtpServer,
    deliverer: loop.DeliveryLoop,
    pool: Any,
) -> None:
    smtp.always_refuse = {"gone@example.org": "550 5.1.1 No such user"}
    smtp.rcpt_replies = {"busy@example.org": ["452 4.2.2 Mailbox full", "450 4.2.1 Busy"]}
    created = invite(
        meeting_stub, accounts["host"], "ok@example.org", "gone@example.org", "busy@example.org"
    )
    deliver_all(deliverer)
    for _ in range(2):
        make_due(pool)
        deliver_all(deliverer)

    first, second = smtp.received
    assert first.recipients == ["host@example.com", "ok@example.org"]
    assert second.recipients == ["busy@example.org"]
    # The same message (same Message-ID, same To) to the one recipient still missing.
    assert second.message_id == first.message_id
    assert second.message["To"] == first.message["To"]
    assert "busy@example.org" in str(first.message["To"])

    [row] = outbox_rows(pool, m_id(created))
    assert (row["status"], row["attempts"]) == ("failed", 3)
    assert row["last_error"] == "refused gone@example.org: 550 5.1.1 No such user"
    states = [(r["email"], r["state"], r["detail"]) for r in row["recipients"]]
    assert states == [
        ("host@example.com", "sent", None),
        ("ok@example.org", "sent", None),
        ("gone@example.org", "failed", "550 5.1.1 No such user"),
        ("busy@example.org", "sent", None),
    ]


def test_one_connection_is_reused_across_messages(
    meeting_stub: Any,
    accounts: dict[str, Account],
    smtp: SmtpServer,
    deliverer: loop.DeliveryLoop,
) -> None:
    for _ in range(5):
        invite(meeting_stub, accounts["host"], "guest@example.org")
    deliver_all(deliverer)
    assert len(smtp.received) == 5
    assert smtp.connections == 1


def test_an_unreachable_server_is_a_temporary_failure() -> None:
    sender = mailer.SmtpMailer(
        mailer.parse_url(f"smtp://127.0.0.1:{free_port('127.0.0.1')}?timeout=2")
    )
    outcome = sender.send(_message(), "from@example.com", ["a@example.org"])
    assert outcome.delivered == [] and outcome.permanent == {}
    assert outcome.temporary["a@example.org"].startswith("cannot connect to 127.0.0.1:")


def test_login_with_the_credentials_of_the_url() -> None:
    seen: list[tuple[str, str]] = []

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> Any:
        seen.append((auth.login.decode(), auth.password.decode()))
        return AuthResult(success=auth.password == b"p@ss word", handled=False)

    state = SmtpServer(port=free_port("127.0.0.1"))
    controller = Controller(
        _Handler(state),
        hostname="127.0.0.1",
        port=state.port,
        authenticator=authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        where = f"127.0.0.1:{state.port}"
        good = mailer.SmtpMailer(mailer.parse_url(f"smtp://mail%40user:p%40ss%20word@{where}"))
        assert good.send(_message(), "f@example.com", ["a@example.org"]).delivered == [
            "a@example.org"
        ]
        good.close()
        bad = mailer.SmtpMailer(mailer.parse_url(f"smtp://mail%40user:wrong@{where}"))
        outcome = bad.send(_message(), "f@example.com", ["a@example.org"])
        # A refused login is our configuration, not the message: retried, never dropped.
        assert list(outcome.temporary) == ["a@example.org"]
    finally:
        controller.stop()
    # (smtplib tries each offered mechanism before it gives up on a password.)
    assert seen[0] == ("mail@user", "p@ss word")
    assert set(seen[1:]) == {("mail@user", "wrong")}
    assert len(state.received) == 1


def test_smtp_urls() -> None:
    plain = mailer.parse_url("smtp://relay.internal")
    assert (plain.host, plain.port, plain.security, plain.username) == (
        "relay.internal",
        25,
        "plain",
        None,
    )
    tls = mailer.parse_url("smtps://u%40x:s%2Fcret@mail.example.com?timeout=5")
    assert (tls.port, tls.security, tls.username, tls.password, tls.timeout) == (
        465,
        "tls",
        "u@x",
        "s/cret",
        5.0,
    )
    starttls = mailer.parse_url("smtp+starttls://u:p@mail.example.com:2525")
    assert (starttls.port, starttls.security) == (2525, "starttls")
    assert "p@" not in repr(starttls) and ":p" not in repr(starttls)
    for bad in ("http://x", "smtp://", "smtp://x:port"):
        with pytest.raises(ValueError):
            mailer.parse_url(bad)


def test_without_smtp_mail_is_kept_in_a_maildir(tmp_path: Path) -> None:
    sink = mailer.from_settings(None, tmp_path / "mail")
    outcome = sink.send(_message(), "from@example.com", ["a@example.org", "b@example.org"])
    assert outcome.delivered == ["a@example.org", "b@example.org"]
    [kept] = list(mailbox.Maildir(tmp_path / "mail", create=False))
    assert kept["Delivered-To"] == "a@example.org, b@example.org"
    assert kept["Subject"] == "Invitation: Sync @ Tue 15 Jan 2030 08:00 UTC"
    assert len(list((tmp_path / "mail" / "new").iterdir())) == 1


def test_retry_schedule() -> None:
    middle = [email_sender.retry_delay(n, 0.5) for n in range(1, 13)]
    assert middle == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600, 3600, None]
    assert email_sender.retry_delay(1, 0.0) == pytest.approx(24)
    assert email_sender.retry_delay(1, 0.999999) == pytest.approx(36, abs=0.01)


def test_after_the_last_attempt_temporary_failures_become_final() -> None:
    job = outbox.Claimed(
        id=1,
        version=3,
        kind="email",
        topic="invitation",
        meeting_id="m",
        dedupe_key="k",
        payload={},
        recipients=[
            {"email": "a@x.org", "user_id": None, "state": "pending", "detail": None},
            {"email": "b@x.org", "user_id": None, "state": "sent", "detail": None},
        ],
        attempts=email_sender.MAX_ATTEMPTS,
    )
    outcome = mailer.Outcome(temporary={"a@x.org": "421 4.7.0 Too busy"})
    result = email_sender.settle(job, outcome, 0.5)
    assert (result.status, result.retry_in) == ("failed", None)
    assert result.error == "refused a@x.org: gave up after 12 attempts: 421 4.7.0 Too busy"
    assert [r["state"] for r in result.recipients] == ["failed", "sent"]


def _message() -> Any:
    organizer = emails.Person("host@example.com", "Host")
    info = emails.MeetingInfo("a" * 24, "Sync", START, START + 60, None, 1, organizer, ())
    return emails.render(
        "invitation",
        info,
        ["a@example.org"],
        meeting_settings.MeetingSettings(),
        message_id="<test@example.com>",
        now=datetime.now(UTC),
    )


def test_a_begun_message_is_delivered_only_when_finished(smtp: SmtpServer) -> None:
    sender = mailer.SmtpMailer(mailer.parse_url(smtp.url))
    data = sender.prepare(_message(), "from@example.com", ["a@example.org"])
    begun = sender.begin(data, "from@example.com", ["a@example.org"])
    time.sleep(0.3)
    assert smtp.received == []  # all of it but the final dot is with the server
    assert begun.finish().delivered == ["a@example.org"]
    assert len(smtp.wait_for(1)) == 1
    sender.close()


def test_an_abandoned_message_is_not_delivered(smtp: SmtpServer) -> None:
    sender = mailer.SmtpMailer(mailer.parse_url(smtp.url))
    data = sender.prepare(_message(), "from@example.com", ["a@example.org"])
    sender.begin(data, "from@example.com", ["dropped@example.org"]).abandon()
    # The next message goes out on a new connection; the abandoned one never arrives.
    assert sender.send(data, "from@example.com", ["b@example.org"]).delivered == ["b@example.org"]
    sender.close()
    smtp.wait_for(1)
    time.sleep(0.3)
    assert [r.recipients for r in smtp.received] == [["b@example.org"]]
    assert smtp.connections == 2


def test_a_message_left_begun_is_dropped_by_the_next_one(smtp: SmtpServer) -> None:
    sender = mailer.SmtpMailer(mailer.parse_url(smtp.url))
    data = sender.prepare(_message(), "from@example.com", ["a@example.org"])
    sender.begin(data, "from@example.com", ["left@example.org"])  # e.g. a pass that failed
    assert sender.send(data, "from@example.com", ["b@example.org"]).delivered == ["b@example.org"]
    sender.close()
    smtp.wait_for(1)
    time.sleep(0.3)
    assert [r.recipients for r in smtp.received] == [["b@example.org"]]


def test_lines_that_start_with_a_dot_arrive_intact(smtp: SmtpServer) -> None:
    body = ".hidden\n..two dots\n.\nthe end\n"
    message = MIMEText(body, "plain", "utf-8")
    message["Subject"] = "Dots"
    sender = mailer.SmtpMailer(mailer.parse_url(smtp.url))
    data = sender.prepare(message, "from@example.com", ["a@example.org"])
    assert isinstance(data, bytes)  # the path the delivery loop takes
    assert sender.send(data, "from@example.com", ["a@example.org"]).delivered == ["a@example.org"]
    sender.close()
    [received] = smtp.wait_for(1)
    assert received.message.get_content().replace("\r\n", "\n") == body


def test_closing_with_a_message_begun_drops_it_without_waiting(smtp: SmtpServer) -> None:
    # Shutting down between `begin` and `finish`: QUIT would be read as message data, and the
    # server's reply to it would never come.
    sender = mailer.SmtpMailer(mailer.parse_url(f"{smtp.url}?timeout=20"))
    data = sender.prepare(_message(), "from@example.com", ["a@example.org"])
    sender.begin(data, "from@example.com", ["dropped@example.org"])
    closing = threading.Thread(target=sender.close)
    closing.start()
    closing.join(timeout=5)
    assert not closing.is_alive()
    assert sender.send(data, "from@example.com", ["b@example.org"]).delivered == ["b@example.org"]
    sender.close()
    smtp.wait_for(1)
    time.sleep(0.3)
    assert [r.recipients for r in smtp.received] == [["b@example.org"]]
