"""The meetings servicer: unpack the request, call one domain function, convert the result."""

from __future__ import annotations

from collections.abc import Iterable

import grpc

from meetings.v1 import meetings_pb2, meetings_pb2_grpc
from server.domain import auth, errors, meetings, notification_status, recordings
from server.storage.recording_files import Storage
from server.transport import convert, rpc

Context = grpc.ServicerContext


class MeetingService(meetings_pb2_grpc.MeetingServiceServicer):
    def __init__(self, storage: Storage) -> None:
        self._storage = storage  # a deleted meeting's recordings go with it

    @rpc.handler()
    def CreateMeeting(
        self, request: meetings_pb2.CreateMeetingRequest, context: Context, caller: auth.Caller
    ) -> meetings_pb2.Meeting:
        with rpc.request_field("meeting"):
            if request.meeting.HasField("user_id"):
                raise errors.InvalidFields({"user_id": ["can only be set through the admin API"]})
            patch = convert.patch_from_input(request.meeting, None)
            return convert.meeting_to_pb(meetings.create(caller, patch))

    @rpc.handler()
    def GetMeeting(
        self, request: meetings_pb2.GetMeetingRequest, context: Context, caller: auth.Caller
    ) -> meetings_pb2.Meeting:
        return convert.meeting_to_pb(meetings.get(caller, request.id))

    @rpc.handler(stream=True)
    def ListMeetings(
        self, request: meetings_pb2.ListMeetingsRequest, context: Context, caller: auth.Caller
    ) -> Iterable[meetings_pb2.Meeting]:
        page = meetings.list_page(caller, convert.list_query(request), count=False)
        return [convert.meeting_to_pb(view) for view in page.items]

    @rpc.handler()
    def ListMeetingsPage(
        self, request: meetings_pb2.ListMeetingsPageRequest, context: Context, caller: auth.Caller
    ) -> meetings_pb2.MeetingPage:
        return convert.page_to_pb(
            meetings.list_page(caller, convert.list_query(request), count=True)
        )

    @rpc.handler()
    def UpdateMeeting(
        self, request: meetings_pb2.UpdateMeetingRequest, context: Context, caller: auth.Caller
    ) -> meetings_pb2.Meeting:
        meeting_id: str = request.id
        mask = request.update_mask if request.HasField("update_mask") else None
        patch = convert.patch_from_input(request.meeting, mask)
        with rpc.request_field("meeting"):
            if request.meeting.id and request.meeting.id != meeting_id:
                raise errors.InvalidFields({"_id": ["does not match the meeting being updated"]})
            return convert.meeting_to_pb(meetings.update(caller, meeting_id, patch))

    @rpc.handler()
    def DeleteMeeting(
        self, request: meetings_pb2.DeleteMeetingRequest, context: Context, caller: auth.Caller
    ) -> meetings_pb2.DeleteMeetingResponse:
        files = meetings.delete(caller, request.id)
        recordings.remove_files(self._storage, files)
        return meetings_pb2.DeleteMeetingResponse()

    @rpc.handler(stream=True)
    def ListMeetingNotifications(
        self,
        request: meetings_pb2.ListMeetingNotificationsRequest,
        context: Context,
        caller: auth.Caller,
    ) -> Iterable[meetings_pb2.Notification]:
        found = notification_status.for_host(caller, request.id)
        return [convert.notification_to_pb(view) for view in found]
