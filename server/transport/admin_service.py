"""The admin API servicer (operators, with the admin key): meetings for any user, recordings,
settings, and what the admin panel shows (meeting search and detail, webhook deliveries)."""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.api import httpbody_pb2

from meetings.v1 import admin_pb2 as pb
from meetings.v1 import admin_pb2_grpc, meetings_pb2, recordings_pb2
from server.domain import (
    admin_panel,
    auth,
    dashboard,
    email_previews,
    email_templates,
    errors,
    meeting_settings,
    meetings,
    recordings,
    webhook_settings,
)
from server.storage.recording_files import Storage
from server.transport import convert, rpc

Context = grpc.ServicerContext


class AdminService(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, links: recordings.DownloadLinks, storage: Storage) -> None:
        self._links = links
        self._storage = storage

    @rpc.handler(credential=rpc.ADMIN)
    def CreateMeeting(
        self, request: pb.AdminServiceCreateMeetingRequest, context: Context, caller: None
    ) -> meetings_pb2.Meeting:
        with rpc.request_field("meeting"):
            if not request.meeting.HasField("user_id"):
                raise errors.InvalidFields({"user_id": ["is required: the user who hosts it"]})
            host = auth.caller_for_user(request.meeting.user_id)
            patch = convert.patch_from_input(request.meeting, None)
            return convert.meeting_to_pb(meetings.create(host, patch))

    @rpc.handler(credential=rpc.ADMIN, stream=True)
    def ListMeetingRecordings(
        self, request: pb.ListMeetingRecordingsRequest, context: Context, caller: None
    ) -> Iterable[recordings_pb2.Recording]:
        found = recordings.list_any(request.meeting_id)
        return convert.recordings_to_pb(found, self._links.urls(found))

    @rpc.handler(credential=rpc.ADMIN)
    def DeleteMeetingRecordings(
        self, request: pb.DeleteMeetingRecordingsRequest, context: Context, caller: None
    ) -> pb.DeleteMeetingRecordingsResponse:
        recordings.delete_all(self._storage, request.meeting_id)
        return pb.DeleteMeetingRecordingsResponse()

    @rpc.handler(credential=rpc.ADMIN)
    def GetMeetingsSettings(
        self, request: pb.GetMeetingsSettingsRequest, context: Context, caller: None
    ) -> pb.MeetingsSettings:
        return convert.settings_to_pb(meeting_settings.load(), webhook_settings.load())

    @rpc.handler(credential=rpc.ADMIN)
    def UpdateMeetingsSettings(
        self, request: pb.UpdateMeetingsSettingsRequest, context: Context, caller: None
    ) -> pb.MeetingsSettings:
        general = convert.set_fields(request, meeting_settings.NAMES)
        url = request.webhook_url if request.HasField("webhook_url") else None
        enabled = request.webhook_enabled if request.HasField("webhook_enabled") else None
        admin_panel.update_settings(general, webhook_url=url, webhook_enabled=enabled)
        return convert.settings_to_pb(meeting_settings.load(), webhook_settings.load())

    @rpc.handler(credential=rpc.ADMIN)
    def RotateWebhookSecret(
        self, request: pb.RotateWebhookSecretRequest, context: Context, caller: None
    ) -> pb.WebhookSecret:
        keep = (
            request.previous_valid_seconds
            if request.HasField("previous_valid_seconds")
            else webhook_settings.PREVIOUS_SECRET_SECONDS
        )
        return pb.WebhookSecret(secret=webhook_settings.rotate_secret(keep))

    @rpc.handler(credential=rpc.ADMIN)
    def SearchMeetings(
        self, request: pb.SearchMeetingsRequest, context: Context, caller: None
    ) -> pb.AdminMeetingPage:
        search = admin_panel.Search(
            name=request.name,
            host=request.host,
            start_from=request.start_from,
            start_to=request.start_to,
            limit=request.limit,
            offset=request.offset,
        )
        return convert.summaries_to_pb(admin_panel.search_meetings(search))

    @rpc.handler(credential=rpc.ADMIN)
    def GetMeetingDetail(
        self, request: pb.GetMeetingDetailRequest, context: Context, caller: None
    ) -> pb.AdminMeetingDetail:
        found = admin_panel.meeting_detail(request.meeting_id)
        return convert.meeting_detail_to_pb(found, self._links.urls(found.recordings))

    @rpc.handler(credential=rpc.ADMIN)
    def ListWebhookDeliveries(
        self, request: pb.ListWebhookDeliveriesRequest, context: Context, caller: None
    ) -> pb.WebhookDeliveryPage:
        return convert.deliveries_to_pb(
            admin_panel.webhook_deliveries(request.limit, request.offset)
        )

    @rpc.handler(credential=rpc.ADMIN)
    def ResendWebhookDelivery(
        self, request: pb.ResendWebhookDeliveryRequest, context: Context, caller: None
    ) -> pb.Delivery:
        if not request.id.isdigit() or len(request.id) > 18:
            raise errors.NotFound()
        return convert.delivery_to_pb(admin_panel.resend_webhook(int(request.id)))

    @rpc.handler(credential=rpc.ADMIN)
    def ListEmailTemplates(
        self, request: pb.ListEmailTemplatesRequest, context: Context, caller: None
    ) -> pb.EmailTemplateList:
        found = email_templates.load_all()
        return pb.EmailTemplateList(
            templates=[convert.email_template_to_pb(found[kind]) for kind in email_templates.KINDS],
            variables=email_templates.VARIABLES,
        )

    @rpc.handler(credential=rpc.ADMIN)
    def UpdateEmailTemplate(
        self, request: pb.UpdateEmailTemplateRequest, context: Context, caller: None
    ) -> pb.EmailTemplate:
        parts = convert.set_fields(request, email_templates.PARTS)
        return convert.email_template_to_pb(email_previews.save(request.kind, parts))

    @rpc.handler(credential=rpc.ADMIN)
    def ResetEmailTemplate(
        self, request: pb.ResetEmailTemplateRequest, context: Context, caller: None
    ) -> pb.EmailTemplate:
        reset = dict.fromkeys(email_templates.PARTS)
        return convert.email_template_to_pb(email_previews.save(request.kind, reset))

    @rpc.handler(credential=rpc.ADMIN)
    def PreviewEmail(
        self, request: pb.PreviewEmailRequest, context: Context, caller: None
    ) -> pb.EmailPreview:
        found = email_previews.preview(request.kind, request.meeting_id, self._links)
        return pb.EmailPreview(
            subject=found.subject,
            html=found.html,
            text=found.text,
            html_url=found.html_url,
            fallback=found.fallback,
        )

    @rpc.handler(credential=rpc.NONE)
    def RenderEmailPreview(
        self, request: pb.RenderEmailPreviewRequest, context: Context, caller: None
    ) -> httpbody_pb2.HttpBody:
        html = email_previews.preview_html(
            request.kind, request.meeting_id, request.expires, request.signature, self._links
        )
        return httpbody_pb2.HttpBody(content_type="text/html; charset=utf-8", data=html.encode())

    @rpc.handler(credential=rpc.ADMIN)
    def SendTestEmail(
        self, request: pb.SendTestEmailRequest, context: Context, caller: None
    ) -> pb.Delivery:
        found = email_previews.send_test(request.kind, request.meeting_id, request.to)
        return convert.delivery_to_pb(found)

    @rpc.handler(credential=rpc.ADMIN)
    def GetDashboard(
        self, request: pb.GetDashboardRequest, context: Context, caller: None
    ) -> pb.Dashboard:
        return convert.dashboard_to_pb(dashboard.load())
