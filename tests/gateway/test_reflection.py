"""Server reflection as grpcurl uses it, through the gateway's port and directly: list the
services (v1 and v1alpha), fetch each one's file descriptors, build its messages from them
alone (no generated code), and call a method of every service. grpcurl itself is in none of
the registries this machine reaches (PyPI, Debian, npm), so this test is its equivalent:
it speaks the same protocol, one question after another on one stream."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha import reflection_pb2 as rpb

from server.domain import service_keys
from tests.conftest import Account, admin_metadata
from tests.gateway.conftest import Gateway, create_meeting

VERSIONS = ["grpc.reflection.v1", "grpc.reflection.v1alpha"]


class Reflection:
    """A reflection client on one stream: each question waits for its answer (as grpcurl
    does), so a gateway that held the stream back would make this hang, not pass."""

    def __init__(self, channel: grpc.Channel, version: str) -> None:
        self._questions: queue.Queue[rpb.ServerReflectionRequest | None] = queue.Queue()
        info = channel.stream_stream(
            f"/{version}.ServerReflection/ServerReflectionInfo",
            request_serializer=rpb.ServerReflectionRequest.SerializeToString,
            response_deserializer=rpb.ServerReflectionResponse.FromString,
        )
        self._answers: Iterator[rpb.ServerReflectionResponse] = iter(info(self._ask(), timeout=20))

    def _ask(self) -> Iterator[rpb.ServerReflectionRequest]:
        while (question := self._questions.get()) is not None:
            yield question

    def ask(self, **question: Any) -> rpb.ServerReflectionResponse:
        self._questions.put(rpb.ServerReflectionRequest(**question))
        answer: rpb.ServerReflectionResponse = next(self._answers)
        assert not answer.HasField("error_response"), answer.error_response
        return answer

    def services(self) -> set[str]:
        return {s.name for s in self.ask(list_services="").list_services_response.service}

    def pool_for(self, symbol: str, pool: descriptor_pool.DescriptorPool) -> None:
        """Adds the file defining `symbol`, and the files it imports, to `pool`."""
        answer = self.ask(file_containing_symbol=symbol).file_descriptor_response
        files = [
            descriptor_pb2.FileDescriptorProto.FromString(b) for b in answer.file_descriptor_proto
        ]
        pending = {f.name: f for f in files}
        while pending:  # each file after the files it imports
            for name, file in list(pending.items()):
                if not set(file.dependency) & set(pending):
                    _add(pool, pending.pop(name))

    def close(self) -> None:
        self._questions.put(None)


def _add(pool: descriptor_pool.DescriptorPool, file: descriptor_pb2.FileDescriptorProto) -> None:
    try:
        pool.FindFileByName(file.name)
    except KeyError:
        pool.Add(file)


@pytest.mark.parametrize("version", VERSIONS)
def test_reflection_lists_and_calls_every_service(
    target: str, version: str, gateway: Gateway, accounts: dict[str, Account], admin_key: str
) -> None:
    host = accounts["host"]
    meeting = create_meeting(gateway, host.token)
    media_key = service_keys.issue(service_keys.MEDIA)
    token = (("cb-token", host.token),)
    # Each service, one of its methods, the request as grpcurl's -d JSON, and its credentials.
    calls = {
        "meetings.v1.MeetingService": ("GetMeeting", {"id": meeting["_id"]}, token),
        "meetings.v1.SessionService": ("GetSession", {}, token),
        "meetings.v1.UserService": ("GetUser", {"id": host.user_id}, token),
        "meetings.v1.ChatService": ("ListDialogs", {}, token),
        "meetings.v1.RecordingService": ("ListRecordings", {"meetingId": meeting["_id"]}, token),
        "meetings.v1.MediaService": (
            "EndCall",
            {"meetingId": meeting["_id"]},
            (("cb-service-key", media_key),),
        ),
        "meetings.v1.AdminService": ("GetMeetingsSettings", {}, admin_metadata(admin_key)),
        "grpc.health.v1.Health": ("Check", {}, ()),
    }
    with grpc.insecure_channel(target) as channel:
        reflection = Reflection(channel, version)
        try:
            listed = reflection.services()
            assert set(calls) | set(VERSIONS) == {
                name.replace(".ServerReflection", "") if "reflection" in name else name
                for name in listed
            }
            pool = descriptor_pool.DescriptorPool()
            for service in calls:
                reflection.pool_for(service, pool)
            reflection.pool_for(f"{version}.ServerReflection", pool)
        finally:
            reflection.close()
        answers = {
            service: _call(channel, pool, service, method, body, metadata)
            for service, (method, body, metadata) in calls.items()
        }
    assert answers["meetings.v1.MeetingService"]["_id"] == meeting["_id"]
    assert answers["meetings.v1.UserService"]["user"]["id"] == host.user_id
    assert answers["grpc.health.v1.Health"] == {"status": "SERVING"}
    assert all(isinstance(answer, (dict, list)) for answer in answers.values())


def _call(
    channel: grpc.Channel,
    pool: descriptor_pool.DescriptorPool,
    service: str,
    method: str,
    body: dict[str, Any],
    metadata: Any,
) -> Any:
    """One call built from reflected descriptors only, as grpcurl makes it."""
    found = pool.FindServiceByName(service).FindMethodByName(method)
    request_class = message_factory.GetMessageClass(found.input_type)
    response_class = message_factory.GetMessageClass(found.output_type)
    path = f"/{service}/{method}"
    request = json_format.ParseDict(body, request_class())
    if found.server_streaming:
        stream = channel.unary_stream(
            path, request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )  # fmt: skip
        return [
            json_format.MessageToDict(m) for m in stream(request, metadata=metadata, timeout=10)
        ]
    unary = channel.unary_unary(
        path, request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )  # fmt: skip
    return json_format.MessageToDict(unary(request, metadata=metadata, timeout=10))
