from typing import Any

from meetings.v1 import meetings_pb2
from tests.conftest import Account


def test_create_and_get(meeting_stub: Any, accounts: dict[str, Account]) -> None:
    host = accounts["host"]
    created = meeting_stub.CreateMeeting(
        meetings_pb2.CreateMeetingRequest(
            meeting=meetings_pb2.MeetingInput(name="x", start_date=10, end_date=20)
        ),
        metadata=host.metadata,
    )
    got = meeting_stub.GetMeeting(
        meetings_pb2.GetMeetingRequest(_id=getattr(created, "_id")), metadata=host.metadata
    )
    assert got.name == "x"
