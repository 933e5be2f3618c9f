"""Which emails a meeting change causes (the contract's "Notification emails"), as outbox rows.

Called by meetings.create/update/delete inside their transactions, so a change that rolls back
leaves no row. With `notify` on:
- create: an invitation to the host and every attendee;
- update: notify false->true, an invitation to all; start_date changed, an update to all;
  otherwise attendees added, an attendee_added invitation to the added ones only;
- delete (of a meeting not yet over): a cancellation to all (ICS METHOD:CANCEL);
and, whatever `notify` is, recordings_ready (called when a finished meeting's recordings are
reported, see recording_webhooks): a recording_done email to the host (and the attendees).
A reminder is due `notify_before` ahead of `start_date`; every change re-plans it (moved,
cancelled, or refreshed), and one whose time has already passed when it is planned is recorded
as cancelled, not sent. Attendees are mailed at the email they were given, else at their user
account's; one with neither is skipped, and the skip is recorded on the message.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from server.domain import clock, emails, users
from server.domain.meeting_values import MeetingView
from server.storage import outbox
from server.storage.models import User

_PENDING, _SKIPPED = outbox.RecipientState.PENDING, outbox.RecipientState.SKIPPED


@dataclass(frozen=True)
class _Entry:
    """A person to mail, or the reason they cannot be mailed."""

    person: emails.Person
    problem: str | None = None
    # The UTC offset (minutes) the user's profile gives, if any: the email shows their time.
    utc_offset: int | None = None

    @property
    def key(self) -> str:
        email = self.person.email
        return email.strip().lower() if email else f"user:{self.person.user_id}"


def reminder_due_at(view: MeetingView) -> datetime | None:
    """When the meeting's reminder is due, or None if it has none."""
    if not view.notify or view.notify_before is None:
        return None
    return datetime.fromtimestamp(view.start_date - view.notify_before.seconds, UTC)


def meeting_created(view: MeetingView) -> None:
    if not view.notify:
        return  # no invitation, and no reminder (a new meeting has none to cancel)
    host, attendees = _resolve(view)
    info = _info(view, host, attendees)
    _send_now("invitation", view, info, [host, *attendees])
    _plan_reminder(view, info, [host, *attendees])


def meeting_updated(before: MeetingView, after: MeetingView) -> None:
    if not before.notify and not after.notify:
        # Nothing to send, and no reminder to re-plan: the change that turned notify off
        # cancelled it in its own transaction (a reminder is only live while notify is on).
        return
    host, attendees = _resolve(after)
    info = _info(after, host, attendees)
    everyone = [host, *attendees]
    if after.notify:
        if not before.notify:
            _send_now("invitation", after, info, everyone)
        elif after.start_date != before.start_date:
            _send_now("update", after, info, everyone)
        elif after.attendees != before.attendees:
            known = {host.key} | {entry.key for entry in _resolve(before)[1]}
            added = [entry for entry in attendees if entry.key not in known]
            if added:
                _send_now("attendee_added", after, info, added)
    _plan_reminder(after, info, everyone)


def meeting_deleted(view: MeetingView) -> None:
    live = outbox.live_reminder(view.id)
    if live is not None:
        outbox.cancel(live.id, "the meeting was deleted")
    # Nobody needs to hear that a meeting which is over was removed.
    if view.notify and view.end_date > clock.now().timestamp():
        host, attendees = _resolve(view)
        _send_now("cancellation", view, _info(view, host, attendees), [host, *attendees])


def recordings_ready(
    view: MeetingView, recording_ids: list[str], *, to_attendees: bool
) -> int | None:
    """The recording-done email for these recordings of a finished meeting: to the host, and
    to the attendees if `to_attendees` (the people who may list the recordings). Its links are
    made when it is sent (email_sender), lasting the meetings setting's days."""
    host, attendees = _resolve(view)
    rows = recipients([host, *attendees] if to_attendees else [host])
    sendable = _any_sendable(rows)
    return outbox.enqueue(
        topic="recording_done",
        meeting_id=view.id,
        dedupe_key=f"recording_done:{view.id}:{recording_ids[0]}",
        payload={"meeting": _info(view, host, attendees).as_json(), "recording_ids": recording_ids},
        recipients=rows,
        status=outbox.Status.SCHEDULED if sendable else outbox.Status.FAILED,
        reason=None if sendable else "no recipient has an email address",
    )


def snapshot(view: MeetingView) -> emails.MeetingInfo:
    """What an email says about the meeting now (the admin panel's previews and tests)."""
    host, attendees = _resolve(view)
    return _info(view, host, attendees)


def _resolve(view: MeetingView) -> tuple[_Entry, list[_Entry]]:
    """The host and the attendees with the address to mail each at (one query for users)."""
    ids = {view.host_id} | {a.id for a in view.attendees if a.id is not None}
    columns = (User.id, User.email, User.full_name, User.timezone)
    found = {int(row.id): row for row in User.select(*columns).where(User.id.in_(list(ids)))}

    def entry(user_id: int | None, email: str | None) -> _Entry:
        user = found.get(user_id) if user_id is not None else None
        if user is None:
            if email:
                return _Entry(emails.Person(email, "", user_id))
            return _Entry(emails.Person(None, "", user_id), f"user {user_id} does not exist")
        offset = users.utc_offset(user.timezone)
        if email or user.email:
            return _Entry(emails.Person(email or user.email, user.full_name, user_id), None, offset)
        return _Entry(emails.Person(None, user.full_name, user_id), f"user {user_id} has no email")

    return entry(view.host_id, None), [entry(a.id, a.email) for a in view.attendees]


def _info(view: MeetingView, host: _Entry, attendees: list[_Entry]) -> emails.MeetingInfo:
    return emails.MeetingInfo(
        id=view.id,
        name=view.name,
        start_date=view.start_date,
        end_date=view.end_date,
        timezone=view.timezone.name if view.timezone else None,
        version=view.version,
        organizer=host.person,
        attendees=tuple(entry.person for entry in attendees),
    )


def recipients(entries: Iterable[_Entry]) -> list[dict[str, Any]]:
    """One recipient per address (the host may also be an attendee), skips with their reason."""
    seen: set[str] = set()
    found = []
    for entry in entries:
        if entry.key in seen:
            continue
        seen.add(entry.key)
        row = {
            "email": entry.person.email,
            "user_id": entry.person.user_id,
            "state": _SKIPPED if entry.problem else _PENDING,
            "detail": entry.problem,
        }
        if entry.utc_offset is not None:
            row["utc_offset"] = entry.utc_offset  # read by the email channel at send time
        found.append(row)
    return found


def _any_sendable(rows: Sequence[dict[str, Any]]) -> bool:
    """Whether a recipient has an address to send to (one not skipped)."""
    return any(row["state"] == _PENDING for row in rows)


def _send_now(
    topic: str, view: MeetingView, info: emails.MeetingInfo, entries: Sequence[_Entry]
) -> None:
    rows = recipients(entries)
    sendable = _any_sendable(rows)
    outbox.enqueue(
        topic=topic,
        meeting_id=view.id,
        dedupe_key=f"{topic}:{view.id}:v{view.version}",
        payload={"meeting": info.as_json()},
        recipients=rows,
        status=outbox.Status.SCHEDULED if sendable else outbox.Status.FAILED,
        reason=None if sendable else "no recipient has an email address",
    )


def _plan_reminder(view: MeetingView, info: emails.MeetingInfo, entries: Sequence[_Entry]) -> None:
    """Make the outbox agree with the meeting: one reminder at its due time, or none."""
    due = reminder_due_at(view)
    live = outbox.live_reminder(view.id)
    rows = recipients(entries)
    payload = {"meeting": info.as_json(), "due_at": None if due is None else int(due.timestamp())}
    if live is not None:
        if due is not None and live.payload.get("due_at") == payload["due_at"]:
            # Same time: new content, unless a sender already has it (it is going out now).
            if live.status == outbox.Status.SCHEDULED:
                outbox.refresh(live.id, payload, rows)
            return
        if due is None:
            reason = "notifications were turned off" if not view.notify else "no notify_before"
        else:
            reason = f"the meeting or notify_before changed: now due {clock.iso_ms(due)}"
        outbox.cancel(live.id, reason)
    if due is None:
        return
    key = f"reminder:{view.id}:{payload['due_at']}"
    unsendable = None
    if due <= clock.now():
        unsendable = (
            outbox.Status.CANCELLED,
            f"not sent: its time ({clock.iso_ms(due)}) had passed when it was planned",
        )
    elif not _any_sendable(rows):
        unsendable = (outbox.Status.FAILED, "no recipient has an email address")
    if unsendable is not None:
        # Recorded (once per due time) so that the host sees why no reminder will come.
        outbox.enqueue(
            topic="reminder",
            meeting_id=view.id,
            dedupe_key=key,
            payload=payload,
            recipients=rows,
            due=due,
            status=unsendable[0],
            reason=unsendable[1],
        )
        return
    outbox.revive_or_enqueue(
        topic="reminder",
        meeting_id=view.id,
        dedupe_key=key,
        payload=payload,
        recipients=rows,
        due=due,
    )
