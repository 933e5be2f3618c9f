"""Operators' email templates end to end: saved through the admin API, checked (syntax, unknown
variables, the sandbox), applied by the running delivery loop to every kind of email at the real
SMTP server, falling back to the built-in template when one fails at send time; and the
recording-done email, whose links download the recording."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import grpc
import pytest

from meetings.v1 import admin_pb2 as apb
from meetings.v1 import meetings_pb2, recordings_pb2_grpc
from meetings.v1 import recordings_pb2 as rpb
from server import app
from server.delivery import loop, mailer
from server.domain import (
    email_templates,
    meeting_settings,
    recording_webhooks,
    recordings,
    service_keys,
)
from server.storage.models import User
from tests.conftest import Account, admin_metadata
from tests.delivery_helpers import email_loop
from tests.notifications.conftest import SmtpServer, deliver_all, make_due, outbox_rows
from tests.rpc_helpers import create, field_violations, m_id, rpc_error, update
from tests.test_recordings import download, upload

NOW = int(time.time())
START = NOW + 7 * 86400 - NOW % 3600  # a week from now, on the hour
BRANDED_HTML = (
    "<style>.brand { color: #c0392b; }</style>"
    '<p class="brand">{{ app.name }} {{ kind }}: {{ meeting.name }}</p>'
    '{% for file in recordings %}<a href="{{ file.download_url }}">{{ file.file_name }}</a>'
    "{% endfor %}"
)
BRANDED_TEXT = (
    "{{ app.name }} {{ kind }} for {{ meeting.name }}\n"
    "{% for file in recordings %}{{ file.download_url }}\n{% endfor %}"
    "{% if link_expires_in_days %}valid {{ link_expires_in_days }} days{% endif %}\n"
)


@pytest.fixture
def sender(smtp: SmtpServer, grpc_server: app.Service, db: Any) -> Iterator[loop.DeliveryLoop]:
    """The email loop, its recording links on the test server's own store."""
    links = recordings.DownloadLinks(grpc_server.storage, "http://127.0.0.1:8080", 3600)
    running = email_loop(
        mailer.SmtpMailer(mailer.parse_url(smtp.url)), links=links, worker_id="t", rand=lambda: 0.5
    )
    yield running
    running.close()


def save(admin: Any, key: str, kind: str, **parts: str) -> apb.EmailTemplate:
    request = apb.UpdateEmailTemplateRequest(kind=kind, **parts)
    saved: apb.EmailTemplate = admin.UpdateEmailTemplate(request, metadata=admin_metadata(key))
    return saved


def test_every_kind_of_email_goes_out_with_the_operators_template(
    meeting_stub: Any,
    admin: Any,
    admin_key: str,
    accounts: dict[str, Account],
    channel: grpc.Channel,
    smtp: SmtpServer,
    sender: loop.DeliveryLoop,
    pool: Any,
) -> None:
    host, attendee, mailee = accounts["host"], accounts["attendee"], accounts["mailee"]
    sender.run_once()  # the loop is running before any template exists: no restart follows
    meeting_settings.update({"app_name": "Acme Calls"})
    for kind in email_templates.KINDS:
        saved = save(admin, admin_key, kind, subject="[Acme] {{ kind }}: {{ meeting.name }}",
                     html=BRANDED_HTML, text=BRANDED_TEXT)  # fmt: skip
        assert list(saved.custom) == ["subject", "html", "text"]

    made = create(meeting_stub, host, start_date=START, end_date=START + 3600, notify=True,
                  attendees=[{"id": attendee.user_id}],
                  notify_before={"metric": "hours", "value": 1})  # fmt: skip
    meeting_id = m_id(made)
    update(meeting_stub, host, meeting_id, mask=["attendees"],
           attendees=[{"id": attendee.user_id}, {"email": mailee.email}])  # fmt: skip
    deliver_all(sender)
    update(meeting_stub, host, meeting_id, mask=["start_date", "end_date"],
           start_date=START + 3600, end_date=START + 7200)  # fmt: skip
    deliver_all(sender)
    make_due(pool, meeting_id)
    deliver_all(sender)
    media_key = service_keys.issue(service_keys.MEDIA)
    media = recordings_pb2_grpc.MediaServiceStub(channel)
    recorded = upload(media, media_key, meeting_id, data=b"the call" * 500, duration=61.0)
    media.EndCall(rpb.EndCallRequest(meeting_id=meeting_id),
                  metadata=(("cb-service-key", media_key),))  # fmt: skip
    recording_webhooks.schedule_due(600)
    deliver_all(sender)
    done = smtp.received[-1]
    # The recording-done email's link downloads the recording, for the setting's 7 days.
    [link] = [line for line in done.part("text/plain").splitlines()
              if line.startswith("http")]  # fmt: skip
    assert "valid 7 days" in done.part("text/plain")
    parts = urlsplit(link)
    query = parse_qs(parts.query)
    expires = int(query["expires"][0])
    assert abs(expires - (time.time() + 7 * 86400)) < 120
    rid = parts.path.split("/")[2]
    assert rid == recorded.id
    stub = recordings_pb2_grpc.RecordingServiceStub(channel)
    assert download(stub, rid, expires, query["signature"][0])[0] == b"the call" * 500
    assert f'href="{link}"'.replace("&", "&amp;") in done.part("text/html")
    meeting_stub.DeleteMeeting(meetings_pb2.DeleteMeetingRequest(id=meeting_id),
                               metadata=host.metadata)  # fmt: skip
    deliver_all(sender)

    kinds = ["invitation", "attendee_added", "update", "reminder", "recording_done",
             "cancellation"]  # fmt: skip
    assert smtp.subjects() == [f"[Acme] {kind}: Friday weekly sync" for kind in kinds]
    by_kind = dict(zip(kinds, smtp.received, strict=True))
    assert by_kind["attendee_added"].recipients == ["Mailee@Example.com"]
    assert by_kind["recording_done"].recipients == ["host@example.com"]  # attendees: off
    for kind, mail in by_kind.items():
        page = mail.part("text/html")
        # The operator's <style> was inlined onto the element, as mail clients need.
        assert f'style="color: #c0392b;">Acme Calls {kind}: Friday weekly sync</p>' in page
        assert (
            mail.part("text/plain").splitlines()[0] == f"Acme Calls {kind} for Friday weekly sync"
        )
        has_calendar = kind != "recording_done"
        assert (mail.message.get_content_type() == "multipart/mixed") and (
            any(p.get_content_type() == "text/calendar" for p in mail.message.walk())
            == has_calendar
        ), kind


@pytest.mark.parametrize(
    ("part", "source", "problem"),
    [
        ("html", "<p>Hi</p>\n<p>{{ meeting.name }</p>", "line 2: unexpected '}'"),
        ("text", "Hello\n\n{{ meeting.nam }}", "line 3: 'dict object' has no attribute 'nam'"),
        ("subject", "{{ user.password }}", "line 1: unknown variable 'user'"),
        ("html", "{% for x in meeting %}\n{{ secret }}{% endfor %}",
         "line 2: unknown variable 'secret'"),
        # The sandbox: no attribute that starts with _, however it is reached.
        ("html", "{{ ''.__class__.__mro__[1].__subclasses__() }}",
         "line 1: access to attribute '__class__' of 'str' object is unsafe"),
        ("text", "{{ meeting.name|attr('__class__') }}",
         "line 1: access to attribute '__class__' of 'str' object is unsafe"),
        ("text", "{{ range.__globals__ }}",
         "line 1: access to attribute '__globals__' of 'function' object is unsafe"),
        ("text", "{{ self._TemplateReference__context }}", "line 1: access to attribute"),
        # A template cannot make the server spin or fill its memory.
        ("text", "{% for a in range(5000) %}{% for b in range(5000) %}{% endfor %}{% endfor %}",
         "line 1: over the render budget: range() over 10000 items"),
        ("html", "{{ 'x' * 10**9 }}", "line 1: over the render budget: repetition too long"),
        ("text", "ok\n{{ 1 / 0 }}", "line 2: ZeroDivisionError: division by zero"),
    ],
)  # fmt: skip
def test_a_bad_template_is_refused_with_its_line_and_nothing_changes(
    admin: Any, admin_key: str, part: str, source: str, problem: str
) -> None:
    save(admin, admin_key, "reminder", subject="Soon: {{ meeting.name }}")
    error = rpc_error(lambda: save(admin, admin_key, "reminder", **{part: source}))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    [message] = field_violations(error)[part]
    assert message.startswith(problem), message
    [reminder] = [t for t in _listed(admin, admin_key) if t.kind == "reminder"]
    assert (reminder.subject, list(reminder.custom)) == ("Soon: {{ meeting.name }}", ["subject"])
    assert reminder.html == email_templates.builtin("reminder").html


def _listed(admin: Any, key: str) -> list[apb.EmailTemplate]:
    found = admin.ListEmailTemplates(apb.ListEmailTemplatesRequest(), metadata=admin_metadata(key))
    assert set(found.variables) == set(email_templates.VARIABLES)
    return list(found.templates)


def test_unknown_kinds_and_parts_and_resets(admin: Any, admin_key: str) -> None:
    error = rpc_error(lambda: save(admin, admin_key, "welcome", subject="Hi"))
    assert field_violations(error) == {
        "kind": ["unknown email kind; known: " + ", ".join(email_templates.KINDS)]
    }
    save(admin, admin_key, "invitation", subject="A", text="B")
    cleared = save(admin, admin_key, "invitation", subject="")  # "" = the built-in part again
    assert list(cleared.custom) == ["text"]
    assert cleared.subject == email_templates.builtin("invitation").subject
    reset = admin.ResetEmailTemplate(
        apb.ResetEmailTemplateRequest(kind="invitation"), metadata=admin_metadata(admin_key)
    )
    assert (list(reset.custom), reset.updated_at) == ([], "")
    assert reset.text == email_templates.builtin("invitation").text
    denied = rpc_error(lambda: save(admin, "not-the-key", "invitation", subject="x"))
    assert denied.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_template_that_fails_at_send_time_falls_back_and_the_email_goes_out(
    meeting_stub: Any,
    admin: Any,
    admin_key: str,
    accounts: dict[str, Account],
    smtp: SmtpServer,
    sender: loop.DeliveryLoop,
    pool: Any,
) -> None:
    # The sample meeting has two attendees, so this saves; a meeting with none breaks it.
    save(admin, admin_key, "invitation", text="Second: {{ attendees[1].email }}")
    create(meeting_stub, accounts["host"], start_date=START, end_date=START + 60, notify=True)
    deliver_all(sender)
    [mail] = smtp.received
    assert mail.subject.startswith("Invitation: Friday weekly sync @ ")
    assert "Host invited you to a meeting." in mail.part("text/plain")  # the built-in text
    [row] = outbox_rows(pool)
    assert row["status"] == "sent"
    assert row["last_error"].startswith("the invitation template failed (line 1: ")
    assert row["last_error"].endswith("): sent built-in")


def test_the_recording_done_email_follows_the_meetings_settings(
    meeting_stub: Any,
    accounts: dict[str, Account],
    channel: grpc.Channel,
    smtp: SmtpServer,
    sender: loop.DeliveryLoop,
) -> None:
    host, attendee = accounts["host"], accounts["attendee"]
    media_key = service_keys.issue(service_keys.MEDIA)
    media = recordings_pb2_grpc.MediaServiceStub(channel)

    def recorded_meeting() -> str:
        made = create(meeting_stub, host, start_date=NOW - 3600, end_date=NOW - 60,
                      attendees=[{"id": attendee.user_id}])  # fmt: skip
        upload(media, media_key, m_id(made), data=b"rec" * 100, duration=3725.0)
        recording_webhooks.schedule_due(0)  # end_date has passed: no grace
        deliver_all(sender)
        return m_id(made)

    meeting_settings.update({"recording_email_attendees": True, "recording_link_days": 2})
    recorded_meeting()
    [mail] = smtp.received
    assert mail.subject == "Recording ready: Friday weekly sync"
    assert mail.recipients == ["host@example.com", "attendee@example.com"]
    text = mail.part("text/plain")
    assert "(1:02:05, 0.0 MB)" in text and "work for 2 days" not in text
    assert "The download link works for 2 days." in text
    assert "Download the recording" in mail.part("text/html")

    meeting_settings.update({"recording_email": False})
    recorded_meeting()
    assert len(smtp.received) == 1  # switched off: no email (and no webhook either: off)


def test_meetings_settings_for_the_recording_email_are_checked(admin: Any, admin_key: str) -> None:
    settings = admin.GetMeetingsSettings(
        apb.GetMeetingsSettingsRequest(), metadata=admin_metadata(admin_key)
    )
    assert (settings.app_name, settings.recording_email, settings.recording_email_attendees,
            settings.recording_link_days) == ("Meetings", True, False, 7)  # fmt: skip
    error = rpc_error(
        lambda: admin.UpdateMeetingsSettings(
            apb.UpdateMeetingsSettingsRequest(recording_link_days=8, app_name=""),
            metadata=admin_metadata(admin_key),
        )
    )
    assert field_violations(error) == {
        "recording_link_days": ["must be a whole number of days from 1 to 7"],
        "app_name": ["must be 1 to 100 printable characters"],
    }


def test_previews_render_a_meeting_or_the_sample_and_their_links_are_signed(
    meeting_stub: Any, admin: Any, admin_key: str, accounts: dict[str, Account]
) -> None:
    made = create(meeting_stub, accounts["host"], start_date=START, end_date=START + 60)
    request = apb.PreviewEmailRequest(kind="reminder", meeting_id=m_id(made))
    found = admin.PreviewEmail(request, metadata=admin_metadata(admin_key))
    assert found.subject.startswith("Reminder: Friday weekly sync @ ")
    assert "Join the meeting" in found.html and "Join: https://" in found.text
    assert found.fallback == ""
    sample = admin.PreviewEmail(apb.PreviewEmailRequest(kind="recording_done"),
                                metadata=admin_metadata(admin_key))  # fmt: skip
    assert sample.subject == "Recording ready: Weekly planning"
    assert "Download the recording" in sample.html

    parts = urlsplit(found.html_url)
    assert parts.path == "/admin/email_preview/reminder" and not parts.netloc
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    render = apb.RenderEmailPreviewRequest(kind="reminder", meeting_id=query["meeting_id"],
                                           expires=int(query["expires"]),
                                           signature=query["signature"])  # fmt: skip
    page = admin.RenderEmailPreview(render)  # no key: the link is the credential
    assert page.content_type == "text/html; charset=utf-8"
    assert page.data.decode() == found.html
    for forged in (
        apb.RenderEmailPreviewRequest(kind="update", meeting_id=render.meeting_id,
                                      expires=render.expires, signature=render.signature),
        apb.RenderEmailPreviewRequest(kind="reminder", meeting_id=render.meeting_id,
                                      expires=int(time.time()) - 1, signature=render.signature),
    ):  # fmt: skip
        error = rpc_error(lambda: admin.RenderEmailPreview(forged))
        assert error.code() == grpc.StatusCode.NOT_FOUND


def test_a_test_email_goes_to_the_given_address_only(
    meeting_stub: Any,
    admin: Any,
    admin_key: str,
    accounts: dict[str, Account],
    smtp: SmtpServer,
    sender: loop.DeliveryLoop,
) -> None:
    made = create(meeting_stub, accounts["host"], start_date=START, end_date=START + 60,
                  attendees=[{"id": accounts["attendee"].user_id}])  # fmt: skip
    for kind, meeting_id in (("cancellation", m_id(made)), ("recording_done", "")):
        row = admin.SendTestEmail(
            apb.SendTestEmailRequest(kind=kind, meeting_id=meeting_id, to="ops@example.net"),
            metadata=admin_metadata(admin_key),
        )
        assert (row.kind, row.topic, row.status) == ("email", kind, "scheduled")
    deliver_all(sender)
    assert [m.recipients for m in smtp.received] == [["ops@example.net"]] * 2
    assert smtp.subjects() == [
        "Cancelled: Friday weekly sync @ " + smtp.subjects()[0].split(" @ ")[1],
        "Recording ready: Weekly planning",
    ]
    error = rpc_error(lambda: admin.SendTestEmail(
        apb.SendTestEmailRequest(kind="reminder", to="not an address"),
        metadata=admin_metadata(admin_key)))  # fmt: skip
    assert field_violations(error) == {"to": ["must be an email address"]}


def test_each_recipient_sees_the_time_in_their_own_zone(
    meeting_stub: Any, accounts: dict[str, Account], smtp: SmtpServer, sender: loop.DeliveryLoop
) -> None:
    host, attendee, mailee = accounts["host"], accounts["attendee"], accounts["mailee"]
    User.update(timezone="180").where(User.id == attendee.user_id).execute()  # UTC+3
    User.update(timezone="120").where(User.id == mailee.user_id).execute()  # Riga's, then
    create(meeting_stub, host, start_date=1894694400, end_date=1894698000, notify=True,
           timezone={"offset": 120, "name": "Europe/Riga"},
           attendees=[{"id": attendee.user_id}, {"id": mailee.user_id}])  # fmt: skip
    deliver_all(sender)

    common, own = smtp.received
    assert common.recipients == ["host@example.com", "Mailee@Example.com"]
    assert common.message["To"] == "host@example.com, Mailee@Example.com"
    assert "your time" not in common.part("text/plain")
    assert "When:      Tue 15 Jan 2030 10:00 - 11:00 (Europe/Riga, UTC+02:00)" in common.part(
        "text/plain"
    )
    assert (own.recipients, own.message["To"]) == (["attendee@example.com"], "attendee@example.com")
    text = own.part("text/plain")
    assert "When:      Tue 15 Jan 2030 11:00 - 12:00 (UTC+03:00), your time" in text
    assert "           Tue 15 Jan 2030 10:00 - 11:00 (Europe/Riga, UTC+02:00)" in text
    assert "11:00 - 12:00 (UTC+03:00) <span" in own.part("text/html")
    assert common.message_id != own.message_id
    # One event for both: the same UID and SEQUENCE.
    assert str(common.event()["UID"]) == str(own.event()["UID"])
