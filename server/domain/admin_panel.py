"""What the admin panel shows and does beyond the admin API's basics: meeting search across
hosts, one meeting's full state, webhook deliveries, and sending a delivery again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import peewee as pw

from server.domain import (
    errors,
    ids,
    meeting_settings,
    meetings,
    recordings,
    text,
    webhook_settings,
)
from server.domain.meeting_values import MeetingView, Page
from server.storage import outbox
from server.storage.database import db
from server.storage.models import Meeting, MeetingAttendee, Recording, User

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


@dataclass(frozen=True)
class MeetingSummary:
    id: str
    name: str
    start_date: int
    end_date: int
    host_id: int
    host_login: str
    attendees_count: int
    record: bool
    recordings_count: int


@dataclass(frozen=True)
class Search:
    name: str = ""
    host: str = ""
    start_from: int = 0
    start_to: int = 0
    limit: int = 0
    offset: int = 0


@dataclass(frozen=True)
class MeetingDetail:
    meeting: MeetingView
    host_login: str
    host_email: str
    call_ended_at: datetime | None
    recordings: list[recordings.RecordingView]
    # Every email and webhook row of the meeting, oldest first.
    deliveries: list[outbox.Entry]


def _limit(limit: int) -> int:
    if limit > MAX_LIMIT:
        raise errors.InvalidFields({"limit": [f"must be at most {MAX_LIMIT}"]})
    return limit or DEFAULT_LIMIT


def search_meetings(search: Search) -> Page[MeetingSummary]:
    """Meetings of every host matching `search`, newest start first (then newest id)."""
    text.require(name=search.name, host=search.host)
    limit = _limit(search.limit)
    conditions: list[Any] = []
    name = search.name.strip()
    if name:
        # strpos, not LIKE: the operator's text is matched as typed (no % or _ wildcards).
        by_name = pw.fn.strpos(pw.fn.lower(Meeting.name), name.lower()) > 0
        conditions.append(by_name | (Meeting.id == name.lower()) if ids.is_valid(name) else by_name)
    host = search.host.strip()
    if host:
        by_login = pw.fn.lower(User.login) == host.lower()
        conditions.append((Meeting.host == int(host)) | by_login if host.isdigit() else by_login)
    if search.start_from:
        conditions.append(Meeting.start_date >= search.start_from)
    if search.start_to:
        conditions.append(Meeting.start_date <= search.start_to)
    attendees = MeetingAttendee.select(pw.fn.count(MeetingAttendee.id)).where(
        MeetingAttendee.meeting == Meeting.id
    )
    files = Recording.select(pw.fn.count(Recording.id)).where(Recording.meeting == Meeting.id)
    selected = Meeting.select().join(User, on=(Meeting.host == User.id))
    if conditions:
        selected = selected.where(*conditions)
    rows: Any = (
        selected.select(
            Meeting.id,
            Meeting.name,
            Meeting.start_date,
            Meeting.end_date,
            Meeting.host,
            User.login,
            attendees.alias("attendees_count"),
            Meeting.record,
            files.alias("recordings_count"),
        )
        .order_by(Meeting.start_date.desc(), Meeting.id.desc())
        .limit(limit)
        .offset(search.offset)
        .tuples()
    )
    items = [
        MeetingSummary(
            id=row[0],
            name=row[1],
            start_date=int(row[2]),
            end_date=int(row[3]),
            host_id=int(row[4]),
            host_login=row[5],
            attendees_count=int(row[6]),
            record=bool(row[7]),
            recordings_count=int(row[8]),
        )
        for row in rows
    ]
    return Page(items, selected.count(), limit, search.offset)


def meeting_detail(meeting_id: str) -> MeetingDetail:
    """One meeting, its host, recordings, and every email and webhook row of it."""
    row = Meeting.get_or_none(Meeting.id == meeting_id) if ids.is_valid(meeting_id) else None
    if row is None:
        raise errors.NotFound()
    host = User.get_by_id(row.host_id)
    return MeetingDetail(
        meeting=meetings.view_of(row),
        host_login=host.login,
        host_email=host.email,
        call_ended_at=row.call_ended_at,
        recordings=recordings.list_any(meeting_id),
        deliveries=outbox.entries_for_meeting(meeting_id),
    )


def webhook_deliveries(limit: int, offset: int) -> Page[outbox.Entry]:
    """Webhook deliveries of every meeting, newest first."""
    limit = _limit(limit)
    items, total = outbox.webhook_entries(limit, offset)
    return Page(items, total, limit, offset)


def resend_webhook(row_id: int) -> outbox.Entry:
    """Send a webhook delivery again; returns the row that will carry the new attempt.

    Not sent yet (scheduled, failed, cancelled): the same row is due now, same webhook-id,
    one more attempt (if it fails it is retried as usual, or fails again at once once the
    retries are used up). Sent: a copy in a new row with a new webhook-id, since the receiver
    acknowledged the old id and would rightly drop it as a duplicate. Being sent: refused.
    """
    with db.atomic():
        row = outbox.locked(row_id, outbox.Kind.WEBHOOK)
        if row is None:
            raise errors.NotFound()
        if row.status == outbox.Status.SENDING:
            raise errors.BadRequest("This delivery is being sent right now; try again shortly")
        if row.status != outbox.Status.SENT:
            outbox.due_now(row_id)
            return outbox.entry(row_id)
        new_id = outbox.enqueue(
            kind=outbox.Kind.WEBHOOK,
            topic=row.topic,
            meeting_id=row.meeting_id,
            dedupe_key=f"{row.dedupe_key}:resend:{outbox.copies_of(row.dedupe_key) + 1}",
            payload=row.payload,
            recipients=[],
        )
        assert new_id is not None  # the key is new: counted under the row lock
        return outbox.entry(new_id)


def update_settings(
    general: dict[str, str | bool | int], *, webhook_url: str | None, webhook_enabled: bool | None
) -> None:
    """Change the meeting and webhook settings, all or nothing: any bad field rolls every
    change back, and InvalidFields reports all of them."""
    problems: dict[str, list[str]] = {}
    with db.atomic() as transaction:
        try:
            if general:
                meeting_settings.update(general)
        except errors.InvalidFields as exc:
            problems.update(exc.fields)
        try:
            webhook_settings.update(url=webhook_url, enabled=webhook_enabled)
        except errors.InvalidFields as exc:
            problems.update(exc.fields)
        if problems:
            transaction.rollback()
    if problems:
        raise errors.InvalidFields(problems)
