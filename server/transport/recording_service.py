"""The recordings servicers: participants list and download recordings; the media server
uploads them, ends calls and watches recording control events."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

import grpc
from google.api import httpbody_pb2

from meetings.v1 import recordings_pb2 as pb
from meetings.v1 import recordings_pb2_grpc
from server.domain import auth, errors, recording_control, recordings
from server.storage.recording_files import Storage
from server.telemetry import metrics
from server.transport import convert, rpc

Context = grpc.ServicerContext


class RecordingService(recordings_pb2_grpc.RecordingServiceServicer):
    def __init__(self, links: recordings.DownloadLinks, storage: Storage) -> None:
        self._links = links
        self._storage = storage

    @rpc.handler(stream=True)
    def ListRecordings(
        self, request: pb.ListRecordingsRequest, context: Context, caller: auth.Caller
    ) -> Iterable[pb.Recording]:
        found = recordings.list_for(caller, request.meeting_id)
        return convert.recordings_to_pb(found, self._links.urls(found))

    @rpc.handler(credential=rpc.NONE, live=True)
    def DownloadRecording(
        self, request: pb.DownloadRecordingRequest, context: Context, caller: None
    ) -> Iterator[httpbody_pb2.HttpBody]:
        download = recordings.open_download(
            request.id,
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
        self,
        links: recordings.DownloadLinks,
        storage: Storage,
        *,
        max_bytes: int,
        listen_url: str,
        stopping: threading.Event,
    ) -> None:
        self._links = links
        self._storage = storage
        self._max_bytes = max_bytes
        # Each control watch LISTENs on a connection of its own, made from this URL.
        self._listen_url = listen_url
        self._stopping = stopping

    @rpc.handler(credential=rpc.MEDIA)
    def UploadRecording(
        self, request_iterator: Iterator[pb.UploadRecordingRequest], context: Context, caller: None
    ) -> pb.Recording:
        first = rpc.parsed(next(request_iterator, None))
        if first is None or first.WhichOneof("part") != "metadata":
            raise errors.BadRequest("The first message must carry the recording's metadata")
        with metrics.RECORDING_UPLOADS_IN_FLIGHT.track_inprogress():
            view = recordings.ingest(
                self._storage,
                convert.upload_metadata(first.metadata),
                self._chunks(request_iterator, context),
                self._max_bytes,
            )
        metrics.RECORDING_UPLOADED_BYTES.inc(view.size_bytes)
        return convert.recordings_to_pb([view], self._links.urls([view]))[0]

    @staticmethod
    def _chunks(messages: Iterator[pb.UploadRecordingRequest], context: Context) -> Iterator[bytes]:
        try:
            for message in map(rpc.parsed, messages):
                if message.WhichOneof("part") != "chunk":
                    raise errors.BadRequest("Only the first message may carry metadata")
                yield message.chunk
        except grpc.RpcError:
            raise errors.Cancelled("The upload was interrupted") from None
        # A cancelled stream can also end like a finished one, even after every byte arrived
        # (the client went away before closing it): only a stream still active was closed.
        if not context.is_active():
            raise errors.Cancelled("The upload was interrupted")

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
        after_id = request.after_id if request.HasField("after_id") else None
        watch = recording_control.Watch(self._listen_url, after_id)
        events = watch.events(lambda: context.is_active() and not self._stopping.is_set())
        return (convert.control_event_to_pb(event) for event in events)
