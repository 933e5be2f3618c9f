"""Helpers for tests that call the real gRPC server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from meetings.v1 import meetings_pb2 as pb
from tests.conftest import Account

BASE = {"name": "Friday weekly sync", "start_date": 1613729948, "end_date": 1613731012}


def meeting_rules(**fields: Any) -> pb.MeetingInput:
    attendees = fields.pop("attendees", [])
    message = pb.MeetingInput(**fields)
    for attendee in attendees:
        message.attendees.add(**attendee)
    return message


def create(stub: Any, account: Account, **fields: Any) -> pb.Meeting:
    message = meeting_rules(**{**BASE, **fields})
    result: pb.Meeting = stub.CreateMeeting(
        pb.CreateMeetingRequest(meeting=message), metadata=account.metadata
    )
    return result


def update(
    stub: Any, account: Account, meeting_id: str, mask: list[str] | None = None, **fields: Any
) -> pb.Meeting:
    request = pb.UpdateMeetingRequest(id=meeting_id, meeting=meeting_rules(**fields))
    if mask is not None:
        request.update_mask.CopyFrom(field_mask_pb2.FieldMask(paths=mask))
    result: pb.Meeting = stub.UpdateMeeting(request, metadata=account.metadata)
    return result


def get(stub: Any, account: Account, meeting_id: str) -> pb.Meeting:
    result: pb.Meeting = stub.GetMeeting(
        pb.GetMeetingRequest(id=meeting_id), metadata=account.metadata
    )
    return result


def listed(stub: Any, account: Account, **filters: Any) -> list[str]:
    """Ids of the caller's meetings matching the filters, in the order returned."""
    request = pb.ListMeetingsRequest(**filters)
    return [m_id(m) for m in stub.ListMeetings(request, metadata=account.metadata)]


def m_id(message: Any) -> str:
    value: str = message.id
    return value


def rpc_error(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        result = call()
        if not isinstance(result, pb.Meeting | pb.MeetingPage | pb.DeleteMeetingResponse):
            list(result)
    error: grpc.RpcError = caught.value
    return error


def field_violations(error: grpc.RpcError) -> dict[str, list[str]]:
    """The descriptions of the error's google.rpc.BadRequest, by field path."""
    bad = _detail(error, error_details_pb2.BadRequest)
    found: dict[str, list[str]] = {}
    for violation in bad.field_violations if bad is not None else ():
        found.setdefault(violation.field, []).append(violation.description)
    return found


def _detail(error: grpc.RpcError, kind: type[Any]) -> Any:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no grpc-status-details-bin"
    for detail in status.details:
        found = kind()
        if detail.Unpack(found):
            return found
    return None


def error_info(error: grpc.RpcError) -> tuple[str, str]:
    """The error's google.rpc.ErrorInfo: (reason, domain)."""
    info = _detail(error, error_details_pb2.ErrorInfo)
    assert info is not None, "no ErrorInfo"
    return info.reason, info.domain


def retry_delay(error: grpc.RpcError) -> float | None:
    """The seconds its google.rpc.RetryInfo asks a client to wait, if it has one."""
    retry = _detail(error, error_details_pb2.RetryInfo)
    return None if retry is None else retry.retry_delay.ToTimedelta().total_seconds()


def trailers(error: grpc.RpcError) -> dict[str, str]:
    metadata: Any = error.trailing_metadata()
    return {k: v for k, v in metadata if isinstance(v, str)}
