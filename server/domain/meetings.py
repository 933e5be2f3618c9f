"""Meetings: create, get, list, update and delete, with the contract's rules and visibility."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from server.domain import (
    auth,
    chat,
    clock,
    errors,
    ids,
    meeting_rules,
    notifications,
)
from server.domain.meeting_values import (
    Attendee,
    ListQuery,
    MeetingPatch,
    MeetingView,
    NotifyBefore,
    Page,
    Timezone,
)
from server.storage import meeting_rows, recording_events
from server.storage.database import db
from server.storage.meeting_rows import MeetingRow
from server.storage.models import MeetingAttendee, Recording

normalize_email = meeting_rows.normalize_email


def create(caller: auth.Caller, patch: MeetingPatch) -> MeetingView:
    meeting_rules.validate(patch, creating=True)
    now = clock.now()
    row = MeetingRow(
        id=ids.new_id(),
        name=patch.name,
        start_date=int(patch.start_date),
        end_date=int(patch.end_date),
        host_id=caller.user_id,
        record=patch.record,
        public=patch.public,
        scheduled=patch.scheduled,
        notify=patch.notify,
        notify_before_metric=patch.notify_before.metric if patch.notify_before else None,
        notify_before_value=patch.notify_before.value if patch.notify_before else None,
        timezone_offset=patch.timezone.offset if patch.timezone else None,
        timezone_name=patch.timezone.name if patch.timezone else None,
        # The dialog's id is known before the meeting is written: one INSERT, no UPDATE after.
        chat_dialog_id=ids.new_id() if patch.chat else None,
        created_at=now,
        updated_at=now,
        version=1,
        attendees=patch.attendees,
    )
    with db.atomic():
        meeting_rows.insert(row)
        if row.chat_dialog_id is not None:
            chat.create(
                row.id, row.name, _occupants(caller.user_id, row.attendees), row.chat_dialog_id
            )
        if patch.record:
            recording_events.insert(row.id, "start", now)
        view = _view(row, row.attendees)
        notifications.meeting_created(view)
        return view


def get(caller: auth.Caller, meeting_id: str) -> MeetingView:
    row = _visible_row(caller, meeting_id)
    return _view(row, row.attendees)


def list_page(caller: auth.Caller, query: ListQuery, *, count: bool) -> Page[MeetingView]:
    """The caller's meetings (hosted or attended) matching `query`, ordered by start, then id."""
    email = normalize_email(caller.email)
    rows = meeting_rows.list_for(caller.user_id, email, query.conditions, query.limit, query.offset)
    items = [_view(row, row.attendees) for row in rows]
    total = meeting_rows.count_for(caller.user_id, email, query.conditions) if count else len(items)
    return Page(items=items, limit=query.limit, offset=query.offset, total=total)


def update(caller: auth.Caller, meeting_id: str, patch: MeetingPatch) -> MeetingView:
    with db.atomic() as transaction:
        # The row lock serializes concurrent updates of one meeting: none is lost.
        row = _visible_row(caller, meeting_id, for_update=True)
        if row.host_id != caller.user_id:
            raise errors.PermissionDenied("Only the host can change this meeting")
        before = _view(row, row.attendees)
        meeting_rules.validate(
            patch,
            creating=False,
            current_start=row.start_date,
            current_end=row.end_date,
            current_host=row.host_id,
        )
        present = patch.present
        now = clock.now()
        was_recording = row.record
        for name in ("name", "record", "public", "scheduled", "notify"):
            if name in present:
                setattr(row, name, getattr(patch, name))
        for name in ("start_date", "end_date"):
            if name in present:
                setattr(row, name, int(getattr(patch, name)))
        if "notify_before" in present:
            nb = patch.notify_before
            row.notify_before_metric = nb.metric if nb else None
            row.notify_before_value = nb.value if nb else None
        if "timezone" in present:
            tz = patch.timezone
            row.timezone_offset = tz.offset if tz else None
            row.timezone_name = tz.name if tz else None
        if "attendees" in present and patch.attendees != row.attendees:
            meeting_rows.replace_attendees(row.id, patch.attendees)
            row.attendees = patch.attendees

        wants_chat = patch.chat if "chat" in present else row.chat_dialog_id is not None
        occupants = _occupants(row.host_id, row.attendees)
        if wants_chat and row.chat_dialog_id is None:
            row.chat_dialog_id = chat.create(row.id, row.name, occupants)
        elif wants_chat and row.chat_dialog_id is not None:
            chat.sync(row.chat_dialog_id, row.name, occupants)
        elif row.chat_dialog_id is not None:
            chat.delete(row.chat_dialog_id)
            row.chat_dialog_id = None

        if _view(row, row.attendees) == before:
            # Nothing changed (an empty update, or the meeting echoed back): no new version,
            # no updated_at, no emails. The transaction undoes any rewrite of equal rows.
            transaction.rollback()
            return before
        if row.record != was_recording:
            recording_events.insert(row.id, "start" if row.record else "stop", now)
        row.updated_at = now
        row.version += 1
        meeting_rows.save(row)
        after = _view(row, row.attendees)
        notifications.meeting_updated(before, after)
        return after


def delete(caller: auth.Caller, meeting_id: str) -> list[str]:
    """Delete the meeting (its host only) and its recordings' rows; returns the storage keys
    of their files, for recordings.remove_files once this has committed."""
    with db.atomic():
        row = _visible_row(caller, meeting_id, for_update=True)
        if row.host_id != caller.user_id:
            raise errors.PermissionDenied("Only the host can delete this meeting")
        notifications.meeting_deleted(_view(row, row.attendees))
        files = [
            r.file_uid
            for r in Recording.select(Recording.file_uid).where(Recording.meeting == row.id)
        ]
        meeting_rows.delete(row.id)
    return files


def view_of(row: Any) -> MeetingView:
    """The view of a meeting row, with its attendees (for background work)."""
    return _view(row, _attendees_of([row.id])[row.id])


def _visible_row(caller: auth.Caller, meeting_id: str, *, for_update: bool = False) -> MeetingRow:
    """The meeting if the caller may see it; the same NotFound whether it exists or not."""
    if not ids.is_valid(meeting_id):
        raise errors.NotFound()
    row = meeting_rows.fetch(meeting_id, for_update=for_update)
    if row is None:
        raise errors.NotFound()
    if row.host_id == caller.user_id or row.public or _attends(caller, row.attendees):
        return row
    raise errors.NotFound()


def _attends(caller: auth.Caller, attendees: Iterable[Attendee]) -> bool:
    """Listed by user id, or by an email that matches the caller's account email."""
    email = normalize_email(caller.email)
    return any(
        a.id == caller.user_id or (email is not None and normalize_email(a.email) == email)
        for a in attendees
    )


def require_participant(caller: auth.Caller, meeting_id: str) -> None:
    """NotFound unless the caller hosts or attends the meeting (public does not count)."""
    if not ids.is_valid(meeting_id):
        raise errors.NotFound()
    row = meeting_rows.fetch(meeting_id)
    if row is None or (row.host_id != caller.user_id and not _attends(caller, row.attendees)):
        raise errors.NotFound()


def _attendees_of(meeting_ids: list[str]) -> dict[str, tuple[Attendee, ...]]:
    found: dict[str, list[Attendee]] = {meeting_id: [] for meeting_id in meeting_ids}
    if meeting_ids:
        query: Any = (
            MeetingAttendee.select(
                MeetingAttendee.meeting_id, MeetingAttendee.user_id, MeetingAttendee.email
            )
            .where(MeetingAttendee.meeting_id.in_(meeting_ids))
            .order_by(MeetingAttendee.meeting_id, MeetingAttendee.position)
            .tuples()
        )
        for meeting_id, user_id, email in query:
            found[meeting_id].append(Attendee(id=user_id, email=email))
    return {key: tuple(value) for key, value in found.items()}


def _occupants(host_id: int, attendees: Iterable[Attendee]) -> set[int]:
    return {host_id} | {a.id for a in attendees if a.id}


def _view(row: Any, attendees: tuple[Attendee, ...]) -> MeetingView:
    notify_before = (
        NotifyBefore(row.notify_before_metric, row.notify_before_value)
        if row.notify_before_metric is not None
        else None
    )
    timezone = (
        Timezone(row.timezone_offset, row.timezone_name) if row.timezone_name is not None else None
    )
    return MeetingView(
        id=row.id,
        name=row.name,
        start_date=int(row.start_date),
        end_date=int(row.end_date),
        attendees=tuple(attendees),
        public=bool(row.public),
        scheduled=bool(row.scheduled),
        record=bool(row.record),
        chat_dialog_id=row.chat_dialog_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        host_id=int(row.host_id),
        notify=bool(row.notify),
        notify_before=notify_before,
        timezone=timezone,
        version=int(row.version),
    )
