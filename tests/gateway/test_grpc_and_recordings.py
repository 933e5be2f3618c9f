"""Native gRPC on the gateway's port, and recordings: uploaded over gRPC, fetched over REST."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from meetings.v1 import meetings_pb2 as pb
from meetings.v1 import meetings_pb2_grpc, recordings_pb2, recordings_pb2_grpc
from server.domain import download_links, service_keys
from tests.conftest import Account
from tests.gateway.conftest import Gateway, create_meeting

RECORDING_KEYS = {
    "_id", "room_id", "participants_ids", "participants_count", "file_uid", "duration", "size",
    "download_url", "created_at", "updated_at",
}  # fmt: skip


@pytest.fixture
def gateway_channel(gateway: Gateway) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"{gateway.host}:{gateway.port}") as channel:
        yield channel


def test_native_grpc_through_the_gateway_port(
    gateway_channel: grpc.Channel, gateway: Gateway, accounts: dict[str, Account]
) -> None:
    host = accounts["host"]
    stub = meetings_pb2_grpc.MeetingServiceStub(gateway_channel)
    created = stub.CreateMeeting(
        pb.CreateMeetingRequest(
            meeting=pb.MeetingInput(name="Native", start_date=1000, end_date=2000)
        ),
        metadata=host.metadata,
    )
    meeting_id = created.id
    listed = list(stub.ListMeetings(pb.ListMeetingsRequest(), metadata=host.metadata))
    assert [m.id for m in listed] == [meeting_id]
    # The same meeting over REST.
    assert gateway.call("GET", f"/meetings/{meeting_id}", token=host.token).json()["name"] == (
        "Native"
    )

    # Errors keep their gRPC status and trailers (the Lua filter leaves native gRPC alone).
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetMeeting(pb.GetMeetingRequest(id=meeting_id), metadata=(("cb-token", "nope"),))
    error: Any = raised.value
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert dict(error.trailing_metadata())["cb-http-status"] == "401"

    health = health_pb2_grpc.HealthStub(gateway_channel).Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_recording_uploaded_over_grpc_and_downloaded_over_rest(
    gateway_channel: grpc.Channel, gateway: Gateway, accounts: dict[str, Account], db: Any
) -> None:
    host = accounts["host"]
    meeting = create_meeting(gateway, host.token)
    # Larger than the REST body limit: uploads stream through unbuffered.
    data = os.urandom(700_000)

    def messages() -> Iterator[recordings_pb2.UploadRecordingRequest]:
        yield recordings_pb2.UploadRecordingRequest(
            metadata=recordings_pb2.RecordingMetadata(
                meeting_id=meeting["_id"],
                participants_ids=[host.user_id],
                duration=6.062,
                content_type="video/webm",
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
            )
        )
        for start in range(0, len(data), 64 * 1024):
            yield recordings_pb2.UploadRecordingRequest(chunk=data[start : start + 64 * 1024])

    media = recordings_pb2_grpc.MediaServiceStub(gateway_channel)
    key = service_keys.issue(service_keys.MEDIA)
    media.UploadRecording(messages(), metadata=(("cb-service-key", key),))

    listed = gateway.call("GET", f"/meetings/recordings/{meeting['_id']}.json", token=host.token)
    assert listed.status == 200
    [recording] = listed.json()
    assert set(recording) == RECORDING_KEYS
    assert recording["room_id"] == meeting["_id"]
    assert (recording["participants_ids"], recording["participants_count"]) == ([host.user_id], 1)
    assert recording["duration"] == 6.062 and recording["size"] == 0.67

    link = urlsplit(recording["download_url"])
    download = gateway.call("GET", f"{link.path}?{link.query}")
    assert download.status == 200
    assert download.body == data
    assert download.header("content-length") == str(len(data))
    assert download.header("content-type") == "video/webm"
    assert recording["file_uid"] in (download.header("content-disposition") or "")
    # HEAD answers like GET, without the body.
    head = gateway.call("HEAD", f"{link.path}?{link.query}")
    assert (head.status, head.body) == (200, b"")
    assert head.header("content-length") == str(len(data))
    assert head.header("content-type") == "video/webm"

    refused = {"errors": {"base": ["The download link is invalid or has expired"]}}
    tampered = gateway.call("GET", f"{link.path}?{link.query.replace('signature=', 'signature=0')}")
    assert (tampered.status, tampered.json()) == (403, refused)
    # Signed correctly, but expired a second ago.
    secret = service_keys.secret(service_keys.DOWNLOAD_SIGNING)
    past = int(time.time()) - 1
    expired_signature = download_links.signature(secret, recording["_id"], past)
    expired = gateway.call("GET", f"{link.path}?expires={past}&signature={expired_signature}")
    assert (expired.status, expired.json()) == (403, refused)
    # This link's expiry and signature on another recording's path.
    other = recordings_pb2.UploadRecordingRequest
    media.UploadRecording(
        iter(
            [
                other(
                    metadata=recordings_pb2.RecordingMetadata(meeting_id=meeting["_id"], size=12)
                ),
                other(chunk=b"another file"),
            ]
        ),
        metadata=(("cb-service-key", key),),
    )
    second = gateway.call("GET", f"/meetings/recordings/{meeting['_id']}", token=host.token).json()
    other_id = next(r["_id"] for r in second if r["_id"] != recording["_id"])
    foreign = gateway.call("GET", f"/recordings/{other_id}/download?{link.query}")
    assert (foreign.status, foreign.json()) == (403, refused)
    assert b"another file" not in foreign.body


@pytest.mark.parametrize(
    ("method", "payload"),
    [
        ("/meetings.v1.MeetingService/GetMeeting", b"\x0a\x02\xff\xfe"),  # _id, invalid UTF-8
        ("/meetings.v1.SessionService/CreateSession", b"\x0a\x04\x0a\x02\xc0\xaf"),  # login
        ("/meetings.v1.MeetingService/CreateMeeting", b"\x0a\x03\x0a\x01"),  # truncated
    ],
)
def test_a_grpc_request_that_does_not_parse_is_invalid_argument(
    gateway: Gateway, caplog: pytest.LogCaptureFixture, method: str, payload: bytes
) -> None:
    """Bytes no generated stub sends, through the gateway and directly: INVALID_ARGUMENT
    saying why, and nothing in the server's log (grpcio's own parser answered INTERNAL and
    logged a traceback)."""
    caplog.clear()
    with grpc.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as failed:
            call(payload, timeout=5)
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid message" in (failed.value.details() or "")
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
