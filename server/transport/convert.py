"""Protobuf messages <-> domain values: every conversion between the two, in one place."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.protobuf import field_mask_pb2, struct_pb2

from meetings.v1 import admin_pb2, chat_pb2, meetings_pb2, recordings_pb2, sessions_pb2, users_pb2
from server.domain import (
    admin_panel,
    auth,
    chat_messages,
    chat_watch,
    clock,
    dashboard,
    email_templates,
    errors,
    meeting_filters,
    meeting_settings,
    meeting_values,
    recording_webhooks,
    recordings,
    users,
    webhook_settings,
)
from server.domain.meeting_values import (
    Attendee,
    Condition,
    MeetingPatch,
    MeetingView,
    NotifyBefore,
    Page,
    Timezone,
)
from server.storage import outbox
from server.storage.recording_events import ControlEvent

T = TypeVar("T")

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
_KNOWN_MASK_PATHS = frozenset(meeting_values.FIELDS) | frozenset(meeting_values.READ_ONLY_FIELDS)


def set_fields(message: Any, names: Sequence[str]) -> dict[str, Any]:
    """The fields among `names` (proto3 `optional`) that `message` sets, with their values:
    an update request changes those and leaves the others alone."""
    return {name: getattr(message, name) for name in names if message.HasField(name)}


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


def _nullable(value: dict[str, Any] | str | int | None) -> struct_pb2.Value:
    result = struct_pb2.Value()
    if value is None:
        result.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, str):
        result.string_value = value
    elif isinstance(value, int):
        result.number_value = value
    else:
        result.struct_value.update(value)
    return result


def meeting_to_pb(view: MeetingView) -> meetings_pb2.Meeting:
    message = meetings_pb2.Meeting(
        name=view.name,
        start_date=view.start_date,
        end_date=view.end_date,
        public=view.public,
        scheduled=view.scheduled,
        record=view.record,
        chat_dialog_id=view.chat_dialog_id or "",
        created_at=clock.iso_ms(view.created_at),
        updated_at=clock.iso_ms(view.updated_at),
        host_id=view.host_id,
        notify=view.notify,
        notify_before=(
            meetings_pb2.NotifyBefore(
                metric=view.notify_before.metric, value=view.notify_before.value
            )
            if view.notify_before
            else None
        ),
        timezone=(
            meetings_pb2.Timezone(offset=view.timezone.offset, name=view.timezone.name)
            if view.timezone
            else None
        ),
    )
    message.id = view.id
    for attendee in view.attendees:
        item = message.attendees.add()
        if attendee.id is not None:
            item.id = attendee.id
        if attendee.email is not None:
            item.email = attendee.email
    return message


def list_query(
    request: meetings_pb2.ListMeetingsRequest | meetings_pb2.ListMeetingsPageRequest,
) -> meeting_values.ListQuery:
    conditions: list[Condition] = []
    for field in meeting_values.NUMBER_FIELDS + meeting_values.TIME_FIELDS:
        if request.HasField(field):  # type: ignore[arg-type]
            is_time = field in meeting_values.TIME_FIELDS
            conditions += _conditions(field, getattr(request, field), is_time)
    if request.HasField("scheduled"):
        conditions.append(Condition("scheduled", "eq", request.scheduled))
    meeting_id = request.id
    if meeting_id:
        conditions.append(Condition("_id", "eq", meeting_id))
    limit = request.limit if request.HasField("limit") else None
    return meeting_filters.build(conditions, limit, request.offset)


def _conditions(field: str, message: Any, is_time: bool) -> list[Condition]:
    """The conditions a NumberFilter or TimeFilter message sets, in operator order."""

    found = []
    for op in meeting_values.COMPARISONS:
        if message.HasField(op):
            value = getattr(message, op)
            found.append(Condition(field, op, _time(value) if is_time else float(value)))
    for op in meeting_values.SET_OPERATORS:
        values = getattr(message, op)
        if values:
            converted = tuple(map(_time, values)) if is_time else tuple(map(float, values))
            found.append(Condition(field, op, converted))
    return found


def _time(value: Any) -> datetime:
    return value.ToDatetime(tzinfo=UTC)  # type: ignore[no-any-return]


def page_to_pb(page: Page[MeetingView]) -> meetings_pb2.MeetingPage:
    return meetings_pb2.MeetingPage(
        limit=page.limit,
        skip=page.offset,
        total_entries=page.total,
        items=[meeting_to_pb(view) for view in page.items],
    )


def session_to_pb(
    session: auth.SessionView, user: users.UserView | None = None
) -> sessions_pb2.SessionResponse:
    message = sessions_pb2.Session(
        token=session.token,
        user_id=session.user_id,
        created_at=clock.iso_ms(session.created_at),
        updated_at=clock.iso_ms(session.updated_at),
        application_id=session.application_id or 0,
        ts=int(session.created_at.timestamp()),
    )
    message.id = session.id
    if user is not None:
        message.user.CopyFrom(user_to_pb(user))
    return sessions_pb2.SessionResponse(session=message)


def user_to_pb(user: users.UserView) -> users_pb2.User:
    last = user.last_request_at
    return users_pb2.User(
        id=user.id,
        login=user.login,
        email=_nullable(user.email),
        full_name=user.full_name,
        phone=_nullable(user.phone),
        website=_nullable(user.website),
        created_at=clock.iso_ms(user.created_at),
        updated_at=clock.iso_ms(user.updated_at),
        last_request_at=_nullable(clock.iso_ms(last) if last else None),
        external_user_id=_nullable(user.external_user_id),
        external_id=_nullable(user.external_id),
        facebook_id=_nullable(user.facebook_id),
        twitter_id=_nullable(user.twitter_id),
        blob_id=_nullable(None),
        custom_data=_nullable(user.custom_data),
        avatar=_nullable(user.avatar),
        user_tags=_nullable(user.user_tags),
        timezone=_nullable(user.timezone),
        is_guest=user.is_guest,
    )


def profile_input(input_message: users_pb2.UserInput) -> users.ProfileInput:
    message: Any = input_message  # HasField by name, for fields listed elsewhere

    def given(name: str) -> Any:
        return getattr(message, name) if message.HasField(name) else None

    texts = {
        name: getattr(message, name) for name in users.PROFILE_LIMITS if message.HasField(name)
    }
    return users.ProfileInput(
        login=given("login"),
        email=given("email"),
        password=given("password"),
        old_password=given("old_password"),
        full_name=given("full_name"),
        timezone=given("timezone"),
        external_user_id=given("external_user_id"),
        texts=texts,
    )


def user_query(request: users_pb2.ListUsersRequest) -> users.UserQuery:
    """The users/v2 request's conditions (every operator set), page and order."""
    conditions: list[tuple[str, str, object]] = []
    if request.id.eq:
        conditions.append(("id", "eq", request.id.eq))
    for op in meeting_values.SET_OPERATORS:
        if getattr(request.id, op):
            conditions.append(("id", op, list(getattr(request.id, op))))
    for name in users.TEXT_FILTERS:
        text_filter = getattr(request, name)
        for op in ("eq", "start_with"):
            if getattr(text_filter, op):
                conditions.append((name, op, getattr(text_filter, op)))
        for op in meeting_values.SET_OPERATORS:
            if getattr(text_filter, op):
                conditions.append((name, op, list(getattr(text_filter, op))))
    for name in users.DATE_FILTERS:
        for op in meeting_values.ORDERINGS:
            if getattr(getattr(request, name), op):
                conditions.append((name, op, _date(f"{name}[{op}]", getattr(request, name), op)))
    return users.UserQuery(tuple(conditions), *_user_page(request))


def _date(label: str, date_filter: users_pb2.DateFilter, op: str) -> datetime:
    raw = getattr(date_filter, op).strip()
    try:
        if raw.isdigit():
            return datetime.fromtimestamp(int(raw), UTC)
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        raise errors.InvalidFields({label: ["must be an ISO 8601 date or unix seconds"]}) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _user_page(request: users_pb2.ListUsersRequest) -> tuple[int, int, tuple[str, bool]]:
    problems = errors.FieldErrors()
    limit = request.limit or users.PAGE_MAX
    if limit > users.PAGE_MAX:
        problems.add("limit", f"must be at most {users.PAGE_MAX}")
    if request.sort_asc and request.sort_desc:
        problems.add("sort_desc", "cannot be used with sort_asc")
    column = request.sort_desc or request.sort_asc or "id"
    if column not in users.SORTABLE:
        problems.add("sort_desc" if request.sort_desc else "sort_asc",
                     f"must be one of {', '.join(users.SORTABLE)}")  # fmt: skip
    problems.raise_if_any()
    return limit, request.offset, (column, not request.sort_desc)


def user_page_to_pb(page: Page[users.UserView]) -> users_pb2.UserPage:
    return users_pb2.UserPage(
        limit=page.limit,
        skip=page.offset,
        total_entries=page.total,
        items=[user_to_pb(user) for user in page.items],
    )


def notification_to_pb(entry: outbox.Entry) -> meetings_pb2.Notification:
    message = meetings_pb2.Notification(
        topic=entry.topic,
        status=entry.status,
        due_at=round(entry.due_at.timestamp(), 3),
        attempts=entry.attempts,
        reason=_nullable(entry.last_error),
        sent_at=_nullable(clock.iso_ms(entry.sent_at) if entry.sent_at else None),
        created_at=clock.iso_ms(entry.created_at),
        updated_at=clock.iso_ms(entry.updated_at),
    )
    message.id = str(entry.id)
    for recipient in entry.recipients:
        item = message.recipients.add(
            email=recipient.email or "", status=recipient.state, detail=recipient.detail or ""
        )
        if recipient.user_id is not None:
            item.user_id = recipient.user_id
    return message


def recordings_to_pb(
    views: Sequence[recordings.RecordingView], download_urls: Sequence[str]
) -> list[recordings_pb2.Recording]:
    return [_recording_to_pb(view, url) for view, url in zip(views, download_urls, strict=True)]


def _recording_to_pb(view: recordings.RecordingView, download_url: str) -> recordings_pb2.Recording:
    message = recordings_pb2.Recording(
        room_id=view.meeting_id,
        participants_ids=list(view.participant_ids),
        participants_count=len(view.participant_ids),
        file_uid=view.file_uid,
        duration=view.duration,
        size=view.size_mb,
        download_url=download_url,
        created_at=clock.iso_ms(view.created_at),
        updated_at=clock.iso_ms(view.updated_at),
    )
    message.id = view.id
    return message


def control_event_to_pb(event: ControlEvent) -> recordings_pb2.RecordingControlEvent:
    return recordings_pb2.RecordingControlEvent(
        id=event.id,
        meeting_id=event.meeting_id,
        action=event.action,
        created_at=clock.iso_ms(event.created_at),
    )


def settings_to_pb(
    general: meeting_settings.MeetingSettings, hook: webhook_settings.WebhookSettings
) -> admin_pb2.MeetingsSettings:
    return admin_pb2.MeetingsSettings(
        meeting_url_template=general.meeting_url_template,
        sender=general.sender,
        webhook_url=hook.url,
        webhook_enabled=hook.enabled,
        webhook_disabled_reason=hook.disabled_reason,
        webhook_secrets=len(hook.active_secrets(clock.now())),
        app_name=general.app_name,
        recording_email=general.recording_email,
        recording_email_attendees=general.recording_email_attendees,
        recording_link_days=general.recording_link_days,
    )


def email_template_to_pb(found: email_templates.Template) -> admin_pb2.EmailTemplate:
    return admin_pb2.EmailTemplate(
        kind=found.kind,
        subject=found.subject,
        html=found.html,
        text=found.text,
        custom=list(found.custom),
        updated_at=found.updated_at,
    )


def _iso_or_empty(value: datetime | None) -> str:
    return clock.iso_ms(value) if value is not None else ""


def _page_fields(page: Page[T], item_to_pb: Callable[[T], Any]) -> dict[str, Any]:
    """The fields an admin page message shares: items, total, limit, offset."""
    items = [item_to_pb(item) for item in page.items]
    return {"items": items, "total": page.total, "limit": page.limit, "offset": page.offset}


def summaries_to_pb(page: Page[admin_panel.MeetingSummary]) -> admin_pb2.AdminMeetingPage:
    return admin_pb2.AdminMeetingPage(**_page_fields(page, _summary_to_pb))


def _summary_to_pb(item: admin_panel.MeetingSummary) -> admin_pb2.AdminMeetingSummary:
    message = admin_pb2.AdminMeetingSummary(
        name=item.name,
        start_date=item.start_date,
        end_date=item.end_date,
        host_id=item.host_id,
        host_login=item.host_login,
        attendees_count=item.attendees_count,
        record=item.record,
        recordings_count=item.recordings_count,
    )
    message.id = item.id
    return message


def meeting_detail_to_pb(
    found: admin_panel.MeetingDetail, download_urls: Sequence[str]
) -> admin_pb2.AdminMeetingDetail:
    return admin_pb2.AdminMeetingDetail(
        meeting=meeting_to_pb(found.meeting),
        host_login=found.host_login,
        host_email=found.host_email,
        call_ended_at=_iso_or_empty(found.call_ended_at),
        recordings=recordings_to_pb(found.recordings, download_urls),
        deliveries=[delivery_to_pb(entry) for entry in found.deliveries],
    )


def deliveries_to_pb(page: Page[outbox.Entry]) -> admin_pb2.WebhookDeliveryPage:
    return admin_pb2.WebhookDeliveryPage(**_page_fields(page, delivery_to_pb))


def delivery_to_pb(entry: outbox.Entry) -> admin_pb2.Delivery:
    webhook = entry.kind == outbox.Kind.WEBHOOK
    return admin_pb2.Delivery(
        id=str(entry.id),
        kind=entry.kind,
        topic=entry.topic,
        meeting_id=entry.meeting_id or "",
        status=entry.status,
        attempts=entry.attempts,
        last_error=entry.last_error or "",
        due_at=_iso_or_empty(entry.due_at),
        sent_at=_iso_or_empty(entry.sent_at),
        created_at=_iso_or_empty(entry.created_at),
        updated_at=_iso_or_empty(entry.updated_at),
        webhook_id=recording_webhooks.webhook_id(entry.dedupe_key) if webhook else "",
        recipients=[
            admin_pb2.DeliveryRecipient(email=r.email or "", state=r.state, detail=r.detail or "")
            for r in entry.recipients
        ],
    )


def upload_metadata(meta: recordings_pb2.RecordingMetadata) -> recordings.UploadMetadata:
    return recordings.UploadMetadata(
        meeting_id=meta.meeting_id,
        participant_ids=tuple(meta.participants_ids),
        duration=meta.duration,
        content_type=meta.content_type,
        sha256=meta.sha256,
        size=meta.size,
    )


def dialog_to_pb(dialog: chat_messages.DialogView) -> chat_pb2.Dialog:
    last = dialog.last_message
    message = chat_pb2.Dialog(
        type=2,
        name=dialog.name,
        user_id=dialog.host_id,
        occupants_ids=dialog.occupant_ids,
        admins_ids=[dialog.host_id],
        created_at=clock.iso_ms(dialog.created_at),
        updated_at=clock.iso_ms(dialog.updated_at),
        last_message=_nullable(None if last is None else last.message),
        last_message_id=_nullable(None if last is None else last.id),
        last_message_user_id=_nullable(None if last is None else last.sender_id),
        last_message_date_sent=_nullable(None if last is None else last.date_sent),
        unread_messages_count=dialog.unread,
        photo=_nullable(None),
        description=_nullable(None),
        xmpp_room_jid=_nullable(None),
        extensions=_nullable(None),
        permissions=_nullable(None),
        meeting_id=dialog.meeting_id,
    )
    message.id = dialog.id
    return message


def dialog_page_to_pb(page: Page[chat_messages.DialogView]) -> chat_pb2.DialogPage:
    return chat_pb2.DialogPage(
        total_entries=page.total,
        skip=page.offset,
        limit=page.limit,
        items=[dialog_to_pb(d) for d in page.items],
    )


def chat_message_to_pb(view: chat_messages.MessageView) -> chat_pb2.Message:
    message = chat_pb2.Message(
        chat_dialog_id=view.dialog_id,
        message=view.message,
        sender_id=view.sender_id,
        date_sent=view.date_sent,
        created_at=clock.iso_ms(view.created_at),
        updated_at=clock.iso_ms(view.updated_at),
        read_ids=view.read_ids,
        delivered_ids=view.delivered_ids,
        attachments=[
            chat_pb2.Attachment(type=a.type, id=a.id, url=a.url) for a in view.attachments
        ],
        read=int(view.read_by_caller),
    )
    message.id = view.id
    return message


def dialog_event_to_pb(event: chat_watch.Event) -> chat_pb2.DialogEvent:
    if isinstance(event, chat_watch.Keepalive):
        return chat_pb2.DialogEvent(keepalive=chat_pb2.Keepalive())
    return chat_pb2.DialogEvent(message=chat_message_to_pb(event))


def attachments(request: chat_pb2.CreateMessageRequest) -> list[chat_messages.Attachment]:
    return [chat_messages.Attachment(a.type, a.id, a.url) for a in request.attachments]


def history_query(request: chat_pb2.ListMessagesRequest) -> chat_messages.HistoryQuery:
    problems = errors.FieldErrors()
    for name in ("sort_asc", "sort_desc"):
        if getattr(request, name) not in ("", "date_sent"):
            problems.add(name, "must be date_sent")
    problems.raise_if_any()
    date_sent = {
        op: getattr(request.date_sent, op)
        for op in meeting_values.ORDERINGS
        if getattr(request.date_sent, op)  # 0: not given (no message is that old)
    }
    mark = not request.HasField("mark_as_read") or request.mark_as_read != 0
    return chat_messages.HistoryQuery(
        dialog_id=request.chat_dialog_id,
        date_sent=date_sent,
        limit=request.limit or chat_messages.PAGE_MAX,
        skip=request.skip,
        newest_first=bool(request.sort_desc),
        mark_read=mark,
    )


def deletion_to_pb(deletion: chat_messages.Deletion) -> chat_pb2.DeleteMessagesResponse:
    return chat_pb2.DeleteMessagesResponse(
        successfully_deleted=chat_pb2.MessageIds(ids=deletion.deleted),
        not_found=chat_pb2.MessageIds(ids=deletion.not_found),
        wrong_permissions=chat_pb2.MessageIds(ids=deletion.wrong_permissions),
    )


def dashboard_to_pb(board: dashboard.Dashboard) -> admin_pb2.Dashboard:
    return admin_pb2.Dashboard(
        minutes=[_dashboard_minute(point) for point in board.minutes],
        hours=[
            admin_pb2.DashboardHour(
                start=clock.iso_ms(point.start),
                emails_sent=point.emails_sent,
                emails_failed=point.emails_failed,
                webhooks_sent=point.webhooks_sent,
                webhooks_failed=point.webhooks_failed,
            )
            for point in board.hours
        ],
        backlog=[
            admin_pb2.OutboxBacklog(
                kind=b.kind, due=b.due, sending=b.sending, oldest_due_seconds=b.oldest_due_seconds
            )
            for b in board.backlog
        ],
        webhook_state=board.webhook_state,
        webhook_disabled_reason=board.webhook_disabled_reason,
        alerts=board.alerts,
    )


def _dashboard_minute(point: dashboard.MinutePoint) -> admin_pb2.DashboardMinute:
    optional = {
        name: getattr(point, name)
        for name in (
            "p50_ms",
            "p99_ms",
            "backlog",
            "oldest_due_seconds",
            "late_p50_ms",
            "late_p99_ms",
        )
        if getattr(point, name) is not None
    }
    return admin_pb2.DashboardMinute(
        start=clock.iso_ms(point.start),
        requests=point.requests,
        server_errors=point.server_errors,
        client_errors=point.client_errors,
        reminders=point.reminders,
        **optional,
    )
