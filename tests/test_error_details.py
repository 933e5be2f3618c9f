"""Errors a gRPC client can act on (AIP-193): every error carries google.rpc.ErrorInfo with a
stable reason in the domain "meetings-api" (docs/grpc.md lists them), field errors a
BadRequest whose paths name the element, and errors worth retrying a RetryInfo."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import field_mask_pb2

from meetings.v1 import meetings_pb2 as pb
from tests.conftest import Account
from tests.rpc_helpers import (
    create,
    error_info,
    field_violations,
    m_id,
    meeting_rules,
    retry_delay,
    rpc_error,
)


def test_field_errors_name_each_element_from_the_request_down(
    meeting_stub: Any, accounts: dict[str, Account]
) -> None:
    host = accounts["host"]
    error = rpc_error(
        lambda: create(
            meeting_stub, host, attendees=[{"email": "ok@example.com"}, {"email": "not an address"}]
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error) == ("INVALID_FIELDS", "meetings-api")
    assert field_violations(error) == {"meeting.attendees[1].email": ["is not a valid address"]}
    assert retry_delay(error) is None
    m = create(meeting_stub, host)
    update = pb.UpdateMeetingRequest(
        id=m_id(m),
        meeting=meeting_rules(timezone=pb.Timezone(offset=9999, name="Europe/Riga")),
        update_mask=field_mask_pb2.FieldMask(paths=["timezone", "colour"]),
    )
    masked = rpc_error(lambda: meeting_stub.UpdateMeeting(update, metadata=host.metadata))
    assert field_violations(masked) == {"update_mask": ["unknown field 'colour'"]}
    update.update_mask.paths.remove("colour")
    zone = rpc_error(lambda: meeting_stub.UpdateMeeting(update, metadata=host.metadata))
    assert field_violations(zone) == {
        "meeting.timezone.offset": ["offset must be from -720 to 840 minutes"]
    }


def test_every_error_has_a_reason(
    meeting_stub: Any, channel: grpc.Channel, accounts: dict[str, Account]
) -> None:
    host, attendee = accounts["host"], accounts["attendee"]
    # A GetMeetingRequest whose id is not UTF-8: it does not parse.
    raw_get = channel.unary_unary(
        "/meetings.v1.MeetingService/GetMeeting",
        request_serializer=None,
        response_deserializer=None,
    )
    m = create(meeting_stub, host, attendees=[{"id": attendee.user_id}])
    notifications = pb.ListMeetingNotificationsRequest(id=m_id(m))
    cases = {
        "UNAUTHENTICATED": lambda: meeting_stub.GetMeeting(pb.GetMeetingRequest(id=m_id(m))),
        "NOT_FOUND": lambda: meeting_stub.GetMeeting(
            pb.GetMeetingRequest(id="0" * 24), metadata=host.metadata
        ),
        "PERMISSION_DENIED": lambda: list(
            meeting_stub.ListMeetingNotifications(notifications, metadata=attendee.metadata)
        ),
        "MALFORMED_REQUEST": lambda: raw_get(b"\n\x02\xff\xfe", metadata=host.metadata),
    }
    found = {}
    for reason, call in cases.items():
        error = rpc_error(call)
        found[reason] = error_info(error)
    assert found == {reason: (reason, "meetings-api") for reason in cases}
