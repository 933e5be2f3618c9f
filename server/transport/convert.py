"""Protobuf messages <-> domain values (with servicers, the only code that imports *_pb2)."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from google.protobuf import field_mask_pb2, struct_pb2

from meetings.v1 import meetings_pb2, sessions_pb2
from server.domain import (
    auth,
    clock,
    errors,
    meeting_filters,
    meeting_rules,
    meetings,
    notification_status,
)
from server.domain.meeting_rules import Attendee, MeetingPatch, NotifyBefore, Timezone

_OPTIONAL_SCALARS = (
    "name",
    "start_date",
    "end_date",
    "record",
    "chat",
    "public",
    "scheduled",
    "notify",
    "host_id",
)
_KNOWN_MASK_PATHS = frozenset(meeting_rules.FIELDS) | frozenset(meeting_rules.READ_ONLY_FIELDS)


def patch_from_input(
    message: meetings_pb2.MeetingInput, mask: field_mask_pb2.FieldMask | None
) -> MeetingPatch:
    """The fields to set: those in `mask` if it has paths, else those the client set."""
    if mask is not None and mask.paths:
        unknown = sorted(set(mask.paths) - _KNOWN_MASK_PATHS)
        if unknown:
            raise errors.InvalidFields(
                {"update_mask": [f"unknown field {path!r}" for path in unknown]}
            )
        present = frozenset(mask.paths)
    else:
        fields: Any = message  # HasField's stub takes literal names only
        present = frozenset(name for name in _OPTIONAL_SCALARS if fields.HasField(name))
        for name in ("notify_before", "timezone"):
            if message.HasField(name):
                present |= {name}
        if message.attendees:
            present |= {"attendees"}
    return MeetingPatch(
        present=present,
        name=message.name,
        start_date=message.start_date,
        end_date=message.end_date,
        attendees=tuple(
            Attendee(
                id=a.id if a.HasField("id") else None,
                email=a.email if a.HasField("email") else None,
            )
            for a in message.attendees
        ),
        record=message.record,
        chat=message.chat,
        public=message.public,
        scheduled=message.scheduled,
        notify=message.notify,
        notify_before=(
            NotifyBefore(message.notify_before.metric, message.notify_before.value)
            if message.HasField("notify_before")
            else None
        ),
        timezone=(
            Timezone(message.timezone.offset, message.timezone.name)
            if message.HasField("timezone")
            else None
        ),
        host_id=message.host_id if message.HasField("host_id") else None,
    )


def _nullable(value: dict[str, Any] | str | None) -> struct_pb2.Value:
    result = struct_pb2.Value()
    if value is None:
        result.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, str):
        result.string_value = value
    else:
        result.struct_value.update(value)
    return result


def meeting_to_pb(view: meetings.MeetingView) -> meetings_pb2.Meeting:
    message = meetings_pb2.Meeting(
        name=view.name,
        start_date=view.start_date,
        end_date=view.end_date,
        public=view.public,
        scheduled=view.scheduled,
        record=view.record,
        chat_dialog_id=_nullable(view.chat_dialog_id),
        created_at=clock.iso_ms(view.created_at),
        updated_at=clock.iso_ms(view.updated_at),
        host_id=view.host_id,
        notify=view.notify,
        notify_before=_nullable(
            {"metric": view.notify_before.metric, "value": view.notify_before.value}
            if view.notify_before
            else None
        ),
        timezone=_nullable(
            {"offset": view.timezone.offset, "name": view.timezone.name} if view.timezone else None
        ),
    )
    setattr(message, "_id", view.id)  # noqa: B010 (a field named _id)
    for attendee in view.attendees:
        item = message.attendees.add()
        if attendee.id is not None:
            item.id = attendee.id
        if attendee.email is not None:
            item.email = attendee.email
    return message


def list_query(request: meetings_pb2.ListMeetingsRequest) -> meeting_filters.ListQuery:
    conditions: list[meeting_filters.Condition] = []
    for field in meeting_filters.NUMBER_FIELDS + meeting_filters.TIME_FIELDS:
        if not request.HasField(field):  # type: ignore[arg-type]
            continue
        filter_message: Any = getattr(request, field)
        is_time = field in meeting_filters.TIME_FIELDS
        for op in ("eq", "gt", "gte", "lt", "lte", "ne"):
            if filter_message.HasField(op):
                value = getattr(filter_message, op)
                conditions.append(
                    meeting_filters.Condition(
                        field, op, value.ToDatetime(tzinfo=UTC) if is_time else float(value)
                    )
                )
        for op in ("in", "nin"):
            values = getattr(filter_message, op)
            if values:
                converted = tuple(v.ToDatetime(tzinfo=UTC) if is_time else float(v) for v in values)
                conditions.append(meeting_filters.Condition(field, op, converted))
    if request.HasField("scheduled"):
        conditions.append(meeting_filters.Condition("scheduled", "eq", request.scheduled))
    meeting_id = getattr(request, "_id")  # noqa: B009
    if meeting_id:
        conditions.append(meeting_filters.Condition("_id", "eq", meeting_id))
    limit = request.limit if request.HasField("limit") else None
    return meeting_filters.build(conditions, limit, request.offset)


def page_to_pb(page: meetings.Page) -> meetings_pb2.MeetingPage:
    return meetings_pb2.MeetingPage(
        limit=page.limit,
        skip=page.offset,
        total_entries=page.total,
        items=[meeting_to_pb(view) for view in page.items],
    )


def session_to_pb(session: auth.SessionView) -> sessions_pb2.SessionResponse:
    message = sessions_pb2.Session(
        token=session.token,
        user_id=session.user_id,
        created_at=clock.iso_ms(session.created_at),
        updated_at=clock.iso_ms(session.updated_at),
    )
    setattr(message, "_id", session.id)  # noqa: B010
    return sessions_pb2.SessionResponse(session=message)


def notification_to_pb(view: notification_status.NotificationView) -> meetings_pb2.Notification:
    message = meetings_pb2.Notification(
        topic=view.topic,
        status=view.status,
        due_at=round(view.due_at.timestamp(), 3),
        attempts=view.attempts,
        reason=_nullable(view.reason),
        sent_at=_nullable(clock.iso_ms(view.sent_at) if view.sent_at else None),
        created_at=clock.iso_ms(view.created_at),
        updated_at=clock.iso_ms(view.updated_at),
    )
    setattr(message, "_id", str(view.id))  # noqa: B010
    for recipient in view.recipients:
        item = message.recipients.add(
            email=recipient.email or "", status=recipient.status, detail=recipient.detail or ""
        )
        if recipient.user_id is not None:
            item.user_id = recipient.user_id
    return message
