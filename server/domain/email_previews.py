"""The admin panel's email tools: save a template, preview an email, send a test one.

A preview renders one kind of email for a real meeting (its recordings too, for the
recording-done email) or for the sample meeting, with the template as it applies now. Its HTML
is also served alone at a signed link that expires in PREVIEW_TTL_SECONDS, for the panel's
frames: a frame cannot send the admin key, and the panel's own CSP (Trusted Types, no inline
style) could not show an email's inlined styles anyway.
"""

from __future__ import annotations

import hmac
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message
from urllib.parse import quote, urlencode

from server.domain import (
    clock,
    download_links,
    email_templates,
    emails,
    errors,
    ids,
    meeting_rules,
    meeting_settings,
    meetings,
    notifications,
    recording_emails,
    recordings,
    service_keys,
)
from server.storage import outbox
from server.storage.models import Meeting

PREVIEW_TTL_SECONDS = 600


@dataclass(frozen=True)
class Preview:
    subject: str
    html: str
    text: str
    html_url: str
    # Why the operator's template was not used ("" = it was).
    fallback: str


def save(kind: str, parts: Mapping[str, str | None]) -> email_templates.Template:
    """Store parts of `kind`'s template, checked against the sample meeting's variables."""
    email_templates.check_kind(kind)  # before the sample variables, which assume a kind
    sample = emails.sample_variables(kind, meeting_settings.load())
    return email_templates.update(kind, parts, sample)


def preview(kind: str, meeting_id: str, links: recordings.DownloadLinks) -> Preview:
    """`kind`'s email for `meeting_id` ("" = the sample meeting), as it would go out now."""
    message, fallback = _compose(kind, meeting_id, links)
    html, text = _bodies(message)
    expires = int(time.time()) + PREVIEW_TTL_SECONDS
    query = urlencode(
        {
            "meeting_id": meeting_id,
            "expires": expires,
            "signature": _sign(kind, meeting_id, expires),
        }
    )
    # A path: the panel loads it from its own origin (its CSP frames only 'self').
    url = f"/admin/email_preview/{quote(kind)}?{query}"
    subject = str(make_header(decode_header(message["Subject"])))
    return Preview(subject, html, text, url, fallback or "")


def preview_html(
    kind: str, meeting_id: str, expires: int, signature: str, links: recordings.DownloadLinks
) -> str:
    """The HTML of a preview link (NotFound unless it is signed and not expired)."""
    if expires < int(time.time()) or not hmac.compare_digest(
        _sign(kind, meeting_id, expires), signature
    ):
        raise errors.NotFound("This preview link is invalid or has expired")
    return _bodies(_compose(kind, meeting_id, links)[0])[0]


def send_test(kind: str, meeting_id: str, to: str) -> outbox.Entry:
    """`kind`'s email for `meeting_id` ("" = the sample meeting) to `to` alone, through the
    outbox; a recording-done test of a meeting without recordings lists the samples."""
    email_templates.check_kind(kind)
    if not meeting_rules.is_email(to.strip()):
        raise errors.InvalidFields({"to": ["must be an email address"]})
    payload: dict[str, object] = {"test": True}
    if meeting_id:
        view = meetings.view_of(_meeting(meeting_id))
        payload["meeting"] = notifications.snapshot(view).as_json()
        payload["recording_ids"] = [r.id for r in recordings.list_any(meeting_id)]
    else:
        payload.update(sample=True, recording_ids=[])
    row_id = outbox.enqueue(
        topic=kind,
        meeting_id=meeting_id or None,
        dedupe_key=f"test:{kind}:{uuid.uuid4().hex}",
        payload=payload,
        recipients=[{"email": to.strip(), "user_id": None, "state": "pending", "detail": None}],
    )
    assert row_id is not None  # the key is new
    return outbox.entry(row_id)


def _meeting(meeting_id: str) -> Meeting:
    row = Meeting.get_or_none(Meeting.id == meeting_id) if ids.is_valid(meeting_id) else None
    if row is None:
        raise errors.NotFound()
    return row


def _compose(
    kind: str, meeting_id: str, links: recordings.DownloadLinks
) -> tuple[Message, str | None]:
    email_templates.check_kind(kind)
    config = meeting_settings.load()
    files: list[emails.RecordingLink] = []
    if meeting_id:
        view = meetings.view_of(_meeting(meeting_id))
        info = notifications.snapshot(view)
        if kind == recording_emails.TOPIC:
            found = [r.id for r in recordings.list_any(meeting_id)]
            files = recording_emails.links_for(found, links, config.recording_link_days)
    else:
        info = emails.SAMPLE_MEETING
    if kind == recording_emails.TOPIC and not files:
        files = list(emails.SAMPLE_RECORDINGS)
    return emails.compose(
        kind,
        info,
        [a.email for a in info.attendees if a.email][:1] or ["attendee@example.com"],
        config,
        message_id=f"<preview.{uuid.uuid4().hex}@{config.sender_address.rpartition('@')[2]}>",
        now=clock.now(),
        template=email_templates.get(kind),
        recordings=files,
        link_days=config.recording_link_days if kind == recording_emails.TOPIC else 0,
    )


def _bodies(message: Message) -> tuple[str, str]:
    """The HTML and plain text parts of a composed message."""
    found = {}
    for part in message.walk():
        if part.get_content_maintype() == "text" and part.get_content_subtype() in (
            "html",
            "plain",
        ):
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            found[part.get_content_subtype()] = payload.decode("utf-8")
    return found["html"], found["plain"]


def _sign(kind: str, meeting_id: str, expires: int) -> str:
    # The download-signing secret, over a subject no recording id can take (ids are hex).
    secret = service_keys.secret(service_keys.DOWNLOAD_SIGNING)
    return download_links.signature(secret, f"email-preview:{kind}:{meeting_id}", expires)
