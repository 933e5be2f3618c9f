"""gRPC servicers for recordings: participants list and download; the media server uploads,
ends calls and watches recording control events."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

import grpc
from google.api import httpbody_pb2

from meetings.v1 import recordings_pb2 as pb
from meetings.v1 import recordings_pb2_grpc
from server.domain import auth, clock, errors, recording_control, recordings
from server.settings import Settings
from server.storage.database import db
from server.storage.recording_files import Storage
from server.transport import rpc

Context = grpc.ServicerContext


def recording_to_pb(view: recordings.RecordingView, download_url: str) -> pb.Recording:
    message = pb.Recording(
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
    setattr(message, "_id", view.id)  # noqa: B010
    return message


class RecordingLinks:
    """Builds each recording's signed download link from the settings."""

    def __init__(self, settings: Settings) -> None:
        self._base = settings.public_base_url
        self._ttl = settings.download_link_ttl_seconds

    def to_pbs(self, views: list[recordings.RecordingView]) -> list[pb.Recording]:
        urls = recordings.download_urls(self._base, (view.id for view in views), self._ttl)
        return [recording_to_pb(view, url) for view, url in zip(views, urls, strict=True)]


class RecordingService(recordings_pb2_grpc.RecordingServiceServicer):
    def __init__(self, settings: Settings, storage: Storage) -> None:
        self._links = RecordingLinks(settings)
        self._storage = storage

    @rpc.handler(stream=True)
    def ListRecordings(
        self, request: pb.ListRecordingsRequest, context: Context, caller: auth.Caller
    ) -> Iterable[pb.Recording]:
        return self._links.to_pbs(recordings.list_for(caller, request.meeting_id))

    @rpc.handler(credential=rpc.NONE, live=True)
    def DownloadRecording(
        self, request: pb.DownloadRecordingRequest, context: Context, caller: None
    ) -> Iterator[httpbody_pb2.HttpBody]:
        download = recordings.open_download(
            getattr(request, "_id"),  # noqa: B009
            request.expires,
            request.signature,
        )
        rpc.extra_headers.set(
            (
                ("content-disposition", f'attachment; filename="{download.file_name}"'),
                ("cb-content-length", str(download.size)),
            )
        )
        return self._stream(download)

    def _stream(self, download: recordings.Download) -> Iterator[httpbody_pb2.HttpBody]:
        first = True
        for chunk in recordings.read(self._storage, download):
            if first:
                yield httpbody_pb2.HttpBody(content_type=download.content_type, data=chunk)
                first = False
            else:
                yield httpbody_pb2.HttpBody(data=chunk)


class MediaService(recordings_pb2_grpc.MediaServiceServicer):
    def __init__(
        self, settings: Settings, storage: Storage, database_url: str, stopping: threading.Event
    ) -> None:
        self._links = RecordingLinks(settings)
        self._storage = storage
        self._max_bytes = settings.max_recording_bytes
        self._database_url = database_url
        self._stopping = stopping

    @rpc.handler(credential=rpc.MEDIA)
    def UploadRecording(
        self, request_iterator: Iterator[pb.UploadRecordingRequest], context: Context, caller: None
    ) -> pb.Recording:
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("part") != "metadata":
            raise errors.BadRequest("The first message must carry the recording's metadata")
        meta = first.metadata
        metadata = recordings.UploadMetadata(
            meeting_id=meta.meeting_id,
            participant_ids=tuple(meta.participants_ids),
            duration=meta.duration,
            content_type=meta.content_type,
            sha256=meta.sha256,
            size=meta.size,
        )
        view = recordings.ingest(
            self._storage, metadata, self._chunks(request_iterator), self._max_bytes
        )
        return self._links.to_pbs([view])[0]

    @staticmethod
    def _chunks(messages: Iterator[pb.UploadRecordingRequest]) -> Iterator[bytes]:
        try:
            for message in messages:
                if message.WhichOneof("part") != "chunk":
                    raise errors.BadRequest("Only the first message may carry metadata")
                yield message.chunk
        except grpc.RpcError:
            raise errors.Cancelled("The upload was interrupted") from None
        # A cancelled stream can also end like a finished one: ingest() compares the bytes
        # received with the size the metadata announced.

    @rpc.handler(credential=rpc.MEDIA)
    def EndCall(
        self, request: pb.EndCallRequest, context: Context, caller: None
    ) -> pb.EndCallResponse:
        recordings.end_call(request.meeting_id)
        return pb.EndCallResponse()

    @rpc.handler(credential=rpc.MEDIA, live=True)
    def WatchRecordingControl(
        self, request: pb.WatchRecordingControlRequest, context: Context, caller: None
    ) -> Iterator[pb.RecordingControlEvent]:
        cursor = request.after_id if request.HasField("after_id") else recording_control.last_id()
        # Listen before reading, so that nothing committed in between is missed.
        listener = recording_control.Listener(self._database_url)
        return self._watch(listener, cursor, context)

    def _watch(
        self, listener: recording_control.Listener, cursor: int, context: Context
    ) -> Iterator[pb.RecordingControlEvent]:
        try:
            while context.is_active() and not self._stopping.is_set():
                with db.connection_context():
                    events = recording_control.after(cursor)
                for event in events:
                    cursor = event.id
                    yield pb.RecordingControlEvent(
                        id=event.id,
                        meeting_id=event.meeting_id,
                        action=event.action,
                        created_at=clock.iso_ms(event.created_at),
                    )
                if len(events) < recording_control.BATCH:
                    listener.wait(0.5)
        finally:
            listener.close()
