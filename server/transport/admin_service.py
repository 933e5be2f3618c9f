"""The admin API (operators, with the admin key): meetings for any user, recordings, settings,
and what the admin panel shows (meeting search and detail, webhook deliveries)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import grpc

from meetings.v1 import admin_pb2 as pb
from meetings.v1 import admin_pb2_grpc, meetings_pb2, recordings_pb2
from server.delivery import webhook_http as webhooks
from server.domain import admin_panel, auth, clock, errors, meeting_settings, meetings, recordings
from server.settings import Settings
from server.storage.database import db
from server.storage.recording_files import Storage
from server.transport import convert, rpc
from server.transport.recording_service import RecordingLinks

Context = grpc.ServicerContext


class AdminService(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, settings: Settings, storage: Storage) -> None:
        self._links = RecordingLinks(settings)
        self._storage = storage

    @rpc.handler(credential=rpc.ADMIN)
    def CreateMeeting(
        self, request: pb.AdminCreateMeetingRequest, context: Context, caller: None
    ) -> meetings_pb2.Meeting:
        if not request.meeting.HasField("user_id"):
            raise errors.InvalidFields({"user_id": ["is required: the user who hosts it"]})
        host = auth.caller_for_user(request.meeting.user_id)
        patch = convert.patch_from_input(request.meeting, None)
        return convert.meeting_to_pb(meetings.create(host, patch))

    @rpc.handler(credential=rpc.ADMIN, stream=True)
    def ListMeetingRecordings(
        self, request: pb.AdminMeetingRecordingsRequest, context: Context, caller: None
    ) -> Iterable[recordings_pb2.Recording]:
        return self._links.to_pbs(recordings.list_any(request.meeting_id))

    @rpc.handler(credential=rpc.ADMIN)
    def DeleteMeetingRecordings(
        self, request: pb.AdminMeetingRecordingsRequest, context: Context, caller: None
    ) -> pb.DeleteMeetingRecordingsResponse:
        recordings.delete_all(self._storage, request.meeting_id)
        return pb.DeleteMeetingRecordingsResponse()

    @rpc.handler(credential=rpc.ADMIN)
    def GetMeetingsSettings(
        self, request: pb.GetMeetingsSettingsRequest, context: Context, caller: None
    ) -> pb.MeetingsSettings:
        return _settings_to_pb()

    @rpc.handler(credential=rpc.ADMIN)
    def UpdateMeetingsSettings(
        self, request: pb.UpdateMeetingsSettingsRequest, context: Context, caller: None
    ) -> pb.MeetingsSettings:
        changes = {
            name: getattr(request, name)
            for name in meeting_settings.NAMES
            if request.HasField(name)  # type: ignore[arg-type]
        }
        url = request.webhook_url if request.HasField("webhook_url") else None
        enabled = request.webhook_enabled if request.HasField("webhook_enabled") else None
        problems: dict[str, list[str]] = {}
        # All or nothing: any bad field rolls every change back, and all are reported.
        with db.atomic() as transaction:
            try:
                if changes:
                    meeting_settings.update(changes)
            except errors.InvalidFields as exc:
                problems.update(exc.fields)
            try:
                webhooks.update(url=url, enabled=enabled)
            except errors.InvalidFields as exc:
                problems.update(exc.fields)
            if problems:
                transaction.rollback()
        if problems:
            raise errors.InvalidFields(problems)
        return _settings_to_pb()

    @rpc.handler(credential=rpc.ADMIN)
    def RotateWebhookSecret(
        self, request: pb.RotateWebhookSecretRequest, context: Context, caller: None
    ) -> pb.WebhookSecret:
        keep = (
            request.previous_valid_seconds
            if request.HasField("previous_valid_seconds")
            else webhooks.PREVIOUS_SECRET_SECONDS
        )
        return pb.WebhookSecret(secret=webhooks.rotate_secret(keep))

    @rpc.handler(credential=rpc.ADMIN)
    def SearchMeetings(
        self, request: pb.SearchMeetingsRequest, context: Context, caller: None
    ) -> pb.AdminMeetingPage:
        page = admin_panel.search_meetings(
            admin_panel.Search(
                name=request.name,
                host=request.host,
                start_from=request.start_from,
                start_to=request.start_to,
                limit=request.limit,
                offset=request.offset,
            )
        )
        return pb.AdminMeetingPage(
            items=[_summary_to_pb(item) for item in page.items],
            total=page.total,
            limit=page.limit,
            offset=page.offset,
        )

    @rpc.handler(credential=rpc.ADMIN)
    def GetMeetingDetail(
        self, request: pb.GetMeetingDetailRequest, context: Context, caller: None
    ) -> pb.AdminMeetingDetail:
        found = admin_panel.meeting_detail(request.meeting_id)
        return pb.AdminMeetingDetail(
            meeting=convert.meeting_to_pb(found.meeting),
            host_login=found.host_login,
            host_email=found.host_email,
            call_ended_at=_iso(found.call_ended_at),
            recordings=self._links.to_pbs(list(found.recordings)),
            deliveries=[_delivery_to_pb(view) for view in found.deliveries],
        )

    @rpc.handler(credential=rpc.ADMIN)
    def ListWebhookDeliveries(
        self, request: pb.ListWebhookDeliveriesRequest, context: Context, caller: None
    ) -> pb.WebhookDeliveryPage:
        page = admin_panel.webhook_deliveries(request.limit, request.offset)
        return pb.WebhookDeliveryPage(
            items=[_delivery_to_pb(item) for item in page.items],
            total=page.total,
            limit=page.limit,
            offset=page.offset,
        )

    @rpc.handler(credential=rpc.ADMIN)
    def ResendWebhookDelivery(
        self, request: pb.ResendWebhookDeliveryRequest, context: Context, caller: None
    ) -> pb.Delivery:
        if not request.id.isdigit() or len(request.id) > 18:
            raise errors.NotFound()
        return _delivery_to_pb(admin_panel.resend_webhook(int(request.id)))


def _settings_to_pb() -> pb.MeetingsSettings:
    general = meeting_settings.load()
    hook = webhooks.load()
    return pb.MeetingsSettings(
        meeting_url_template=general.meeting_url_template,
        sender=general.sender,
        webhook_url=hook.url,
        webhook_enabled=hook.enabled,
        webhook_disabled_reason=hook.disabled_reason,
        webhook_secrets=len(hook.active_secrets(clock.now())),
    )


def _iso(value: datetime | None) -> str:
    return clock.iso_ms(value) if value is not None else ""


def _summary_to_pb(item: admin_panel.MeetingSummary) -> pb.AdminMeetingSummary:
    message = pb.AdminMeetingSummary(
        name=item.name,
        start_date=item.start_date,
        end_date=item.end_date,
        host_id=item.host_id,
        host_login=item.host_login,
        attendees_count=item.attendees_count,
        record=item.record,
        recordings_count=item.recordings_count,
    )
    setattr(message, "_id", item.id)  # noqa: B010
    return message


def _delivery_to_pb(view: admin_panel.DeliveryView) -> pb.Delivery:
    return pb.Delivery(
        id=str(view.id),
        kind=view.kind,
        topic=view.topic,
        meeting_id=view.meeting_id or "",
        status=view.status,
        attempts=view.attempts,
        last_error=view.last_error or "",
        due_at=_iso(view.due_at),
        sent_at=_iso(view.sent_at),
        created_at=_iso(view.created_at),
        updated_at=_iso(view.updated_at),
        webhook_id=view.webhook_id or "",
        recipients=[
            pb.DeliveryRecipient(email=r.email or "", state=r.state, detail=r.detail or "")
            for r in view.recipients
        ],
    )
