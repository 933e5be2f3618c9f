"""Meetings: create, get, list, update and delete, with the contract's rules and visibility."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from server import (
    auth,
    chat,
    clock,
    errors,
    ids,
    meeting_filters,
    meeting_input,
    notifications,
    recording_control,
)
from server.database import db
from server.meeting_input import Attendee, MeetingPatch, NotifyBefore, Timezone
from server.models import Meeting, MeetingAttendee, RecordingEvent


@dataclass(frozen=True)
class MeetingView:
    id: str
    name: str
    start_date: int
    end_date: int
    attendees: tuple[Attendee, ...]
    public: bool
    scheduled: bool
    record: bool
    chat_dialog_id: str | None
    created_at: datetime
    updated_at: datetime
    host_id: int
    notify: bool
    notify_before: NotifyBefore | None
    timezone: Timezone | None
    version: int


@dataclass(frozen=True)
class Page:
    items: list[MeetingView]
    limit: int
    offset: int
    total: int


def normalize_email(email: str | None) -> str | None:
    email = (email or "").strip().lower()
    return email or None


def create(caller: auth.Caller, patch: MeetingPatch) -> MeetingView:
    meeting_input.validate(patch, creating=True)
    now = clock.now()
    meeting_id = ids.new_id()
    with db.atomic():
        row = Meeting.create(
            id=meeting_id,
            name=patch.name,
            start_date=int(patch.start_date),
            end_date=int(patch.end_date),
            host=caller.user_id,
            record=patch.record,
            public=patch.public,
            scheduled=patch.scheduled,
            notify=patch.notify,
            notify_before_metric=patch.notify_before.metric if patch.notify_before else None,
            notify_before_value=patch.notify_before.value if patch.notify_before else None,
            timezone_offset=patch.timezone.offset if patch.timezone else None,
            timezone_name=patch.timezone.name if patch.timezone else None,
            created_at=now,
            updated_at=now,
        )
        _insert_attendees(meeting_id, patch.attendees)
        if patch.chat:
            row.chat_dialog_id = chat.create(
                meeting_id, patch.name, _occupants(caller.user_id, patch.attendees)
            )
            row.save(only=[Meeting.chat_dialog_id])
        if patch.record:
            _record_event(meeting_id, "start", now)
        view = _view(row, patch.attendees)
        notifications.meeting_created(view)
        return view


def get(caller: auth.Caller, meeting_id: str) -> MeetingView:
    row = _visible_row(caller, meeting_id)
    return _view(row, _attendees_of([row.id])[row.id])


def list_page(caller: auth.Caller, query: meeting_filters.ListQuery, *, count: bool) -> Page:
    """The caller's meetings (hosted or attended) matching `query`, ordered by start, then id."""
    selected = Meeting.select().where(Meeting.id.in_(_mine(caller)), *_conditions(query))
    rows = list(
        selected.order_by(Meeting.start_date, Meeting.id).limit(query.limit).offset(query.offset)
    )
    attendees = _attendees_of([row.id for row in rows])
    items = [_view(row, attendees[row.id]) for row in rows]
    total = selected.count() if count else len(items)
    return Page(items=items, limit=query.limit, offset=query.offset, total=total)


def update(caller: auth.Caller, meeting_id: str, patch: MeetingPatch) -> MeetingView:
    with db.atomic() as transaction:
        # The row lock serializes concurrent updates of one meeting: none is lost.
        row = _visible_row(caller, meeting_id, for_update=True)
        if row.host_id != caller.user_id:
            raise errors.PermissionDenied("Only the host can change this meeting")
        before = _view(row, _attendees_of([row.id])[row.id])
        meeting_input.validate(
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
        if "attendees" in present:
            _replace_attendees(row.id, patch.attendees)
            attendees = patch.attendees
        else:
            attendees = _attendees_of([row.id])[row.id]

        wants_chat = patch.chat if "chat" in present else row.chat_dialog_id is not None
        occupants = _occupants(row.host_id, attendees)
        if wants_chat and row.chat_dialog_id is None:
            row.chat_dialog_id = chat.create(row.id, row.name, occupants)
        elif wants_chat:
            chat.sync(row.chat_dialog_id, row.name, occupants)
        elif row.chat_dialog_id is not None:
            chat.delete(row.chat_dialog_id)
            row.chat_dialog_id = None

        if _view(row, attendees) == before:
            # Nothing changed (an empty update, or the meeting echoed back): no new version,
            # no updated_at, no emails. The transaction undoes any rewrite of equal rows.
            transaction.rollback()
            return before
        if row.record != was_recording:
            _record_event(row.id, "start" if row.record else "stop", now)
        row.updated_at = now
        row.version += 1
        row.save()
        after = _view(row, attendees)
        notifications.meeting_updated(before, after)
        return after


def delete(caller: auth.Caller, meeting_id: str) -> None:
    with db.atomic():
        row = _visible_row(caller, meeting_id, for_update=True)
        if row.host_id != caller.user_id:
            raise errors.PermissionDenied("Only the host can delete this meeting")
        notifications.meeting_deleted(_view(row, _attendees_of([row.id])[row.id]))
        # Attendees and the chat dialog go with it (ON DELETE CASCADE).
        row.delete_instance()


def view_of(row: Any) -> MeetingView:
    """The view of a meeting row, with its attendees (for background work)."""
    return _view(row, _attendees_of([row.id])[row.id])


def _visible_row(caller: auth.Caller, meeting_id: str, *, for_update: bool = False) -> Any:
    """The meeting if the caller may see it; the same NotFound whether it exists or not."""
    if not ids.is_valid(meeting_id):
        raise errors.NotFound()
    query = Meeting.select().where(Meeting.id == meeting_id)
    if for_update:
        query = query.for_update()
    row = query.first()
    if row is None:
        raise errors.NotFound()
    if row.host_id == caller.user_id or row.public or _attends(caller, meeting_id):
        return row
    raise errors.NotFound()


def require_participant(caller: auth.Caller, meeting_id: str) -> None:
    """NotFound unless the caller hosts or attends the meeting (public does not count)."""
    if not ids.is_valid(meeting_id):
        raise errors.NotFound()
    row = Meeting.select(Meeting.host).where(Meeting.id == meeting_id).first()
    if row is None or (row.host_id != caller.user_id and not _attends(caller, meeting_id)):
        raise errors.NotFound()


def _attends(caller: auth.Caller, meeting_id: str) -> bool:
    who = MeetingAttendee.user_id == caller.user_id
    email = normalize_email(caller.email)
    if email:
        who = who | (MeetingAttendee.email_norm == email)
    return bool(MeetingAttendee.select().where(MeetingAttendee.meeting == meeting_id, who).exists())


def _mine(caller: auth.Caller) -> Any:
    """Ids of the meetings the caller hosts or attends: a UNION of three index scans."""
    ids_query = Meeting.select(Meeting.id).where(Meeting.host == caller.user_id) | (
        MeetingAttendee.select(MeetingAttendee.meeting_id).where(
            MeetingAttendee.user_id == caller.user_id
        )
    )
    email = normalize_email(caller.email)
    if email:
        ids_query = ids_query | MeetingAttendee.select(MeetingAttendee.meeting_id).where(
            MeetingAttendee.email_norm == email
        )
    return ids_query


_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "ne": operator.ne,
    "in": lambda column, values: column.in_(values),
    "nin": lambda column, values: column.not_in(values),
}


def _conditions(query: meeting_filters.ListQuery) -> list[Any]:
    columns = {
        "start_date": Meeting.start_date,
        "end_date": Meeting.end_date,
        "created_at": Meeting.created_at,
        "updated_at": Meeting.updated_at,
        "scheduled": Meeting.scheduled,
        "_id": Meeting.id,
    }
    result = []
    for condition in query.conditions:
        value: Any = condition.value
        if condition.field in meeting_filters.NUMBER_FIELDS:
            value = tuple(int(v) for v in value) if isinstance(value, tuple) else int(value)
        if isinstance(value, tuple):
            value = list(value)
        result.append(_COMPARE[condition.op](columns[condition.field], value))
    return result


def _replace_attendees(meeting_id: str, attendees: Iterable[Attendee]) -> None:
    MeetingAttendee.delete().where(MeetingAttendee.meeting == meeting_id).execute()
    _insert_attendees(meeting_id, attendees)


def _insert_attendees(meeting_id: str, attendees: Iterable[Attendee]) -> None:
    rows = [
        {
            "meeting": meeting_id,
            "position": position,
            "user_id": attendee.id,
            "email": attendee.email,
            "email_norm": normalize_email(attendee.email),
        }
        for position, attendee in enumerate(attendees)
    ]
    if rows:
        MeetingAttendee.insert_many(rows).execute()


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


def _record_event(meeting_id: str, action: str, at: datetime) -> None:
    # Serialize event inserts until commit, so that ids commit in order and a media server
    # resuming "after id N" never misses one (see recording_control).
    db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (recording_control.INSERT_LOCK,))
    RecordingEvent.create(meeting_id=meeting_id, action=action, created_at=at)


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
