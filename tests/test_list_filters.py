"""Every list filter and operator, through the real gRPC server."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2

from meetings.v1 import meetings_pb2 as pb
from tests.conftest import Account
from tests.rpc_helpers import create, field_violations, listed, m_id, rpc_error, update


@pytest.fixture
def three(meeting_stub: Any, accounts: dict[str, Account]) -> tuple[Account, list[str]]:
    """Meetings starting at 100, 200, 300 (ending 150, 250, 350); the middle one scheduled."""
    host = accounts["host"]
    made = [
        m_id(create(meeting_stub, host, start_date=s, end_date=s + 50, scheduled=(s == 200)))
        for s in (100, 200, 300)
    ]
    return host, made


@pytest.mark.parametrize(
    ("field", "op", "value", "expected"),
    [
        ("start_date", "eq", 200, [1]),
        ("start_date", "gt", 200, [2]),
        ("start_date", "gte", 200, [1, 2]),
        ("start_date", "lt", 200, [0]),
        ("start_date", "lte", 200, [0, 1]),
        ("start_date", "ne", 200, [0, 2]),
        ("start_date", "in", [100, 300, 999], [0, 2]),
        ("start_date", "nin", [100, 300], [1]),
        ("end_date", "eq", 250, [1]),
        ("end_date", "gt", 250, [2]),
        ("end_date", "gte", 250, [1, 2]),
        ("end_date", "lt", 250, [0]),
        ("end_date", "lte", 250, [0, 1]),
        ("end_date", "ne", 250, [0, 2]),
        ("end_date", "in", [150], [0]),
        ("end_date", "nin", [150], [1, 2]),
    ],
)
def test_number_operators(
    meeting_stub: Any,
    three: tuple[Account, list[str]],
    field: str,
    op: str,
    value: Any,
    expected: list[int],
) -> None:
    host, made = three
    number_filter = pb.NumberFilter(**{op: value})
    assert listed(meeting_stub, host, **{field: number_filter}) == [made[i] for i in expected]


def test_scheduled_and_id_equality(meeting_stub: Any, three: tuple[Account, list[str]]) -> None:
    host, made = three
    assert listed(meeting_stub, host, scheduled=True) == [made[1]]
    assert listed(meeting_stub, host, scheduled=False) == [made[0], made[2]]
    assert listed(meeting_stub, host, id=made[2]) == [made[2]]


def test_operators_combine(meeting_stub: Any, three: tuple[Account, list[str]]) -> None:
    host, made = three
    assert listed(
        meeting_stub, host, start_date=pb.NumberFilter(gte=100, lt=300), scheduled=False
    ) == [made[0]]


def ts(value: datetime) -> timestamp_pb2.Timestamp:
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(value)
    return result


@pytest.mark.parametrize("field", ["created_at", "updated_at"])
def test_time_operators(meeting_stub: Any, accounts: dict[str, Account], field: str) -> None:
    host = accounts["host"]
    made = []
    for _ in range(3):
        made.append(create(meeting_stub, host))
        time.sleep(0.01)
    if field == "updated_at":
        made = [update(meeting_stub, host, m_id(m), name="touched") for m in made]
    stamps = [datetime.fromisoformat(getattr(m, field).replace("Z", "+00:00")) for m in made]
    ids = [m_id(m) for m in made]
    middle = stamps[1]

    def check(expected: list[int], **ops: Any) -> None:
        assert listed(meeting_stub, host, **{field: pb.TimeFilter(**ops)}) == [
            ids[i] for i in expected
        ]

    check([1], eq=ts(middle))
    check([2], gt=ts(middle))
    check([1, 2], gte=ts(middle))
    check([0], lt=ts(middle))
    check([0, 1], lte=ts(middle))
    check([0, 2], ne=ts(middle))
    check([0, 2], **{"in": [ts(stamps[0]), ts(stamps[2])]})
    check([1], nin=[ts(stamps[0]), ts(stamps[2])])
    check([], gt=ts(stamps[2] + timedelta(hours=1)))


def test_reference_example_filters(meeting_stub: Any, accounts: dict[str, Account]) -> None:
    """start_date[gte]=1613729948&scheduled=true&created_at[gt]=2021-02-19T10:26:49.013Z"""
    host = accounts["host"]
    hit = create(meeting_stub, host, scheduled=True)
    create(meeting_stub, host, scheduled=False)
    create(meeting_stub, host, scheduled=True, start_date=1613729947, end_date=1613729950)
    assert listed(
        meeting_stub,
        host,
        start_date=pb.NumberFilter(gte=1613729948),
        scheduled=True,
        created_at=pb.TimeFilter(gt=ts(datetime(2021, 2, 19, 10, 26, 49, 13000, UTC))),
    ) == [m_id(hit)]


def test_limit_offset_and_stable_order(meeting_stub: Any, accounts: dict[str, Account]) -> None:
    host = accounts["host"]
    # Same start for all: the id breaks the tie, so pages never overlap or skip.
    made = sorted(m_id(create(meeting_stub, host, start_date=500, end_date=600)) for _ in range(7))
    pages = [listed(meeting_stub, host, limit=3, offset=o) for o in (0, 3, 6)]
    assert pages == [made[0:3], made[3:6], made[6:7]]


def test_bad_filter_values_are_invalid_argument(
    meeting_stub: Any, accounts: dict[str, Account]
) -> None:
    host = accounts["host"]
    error = rpc_error(
        lambda: meeting_stub.ListMeetings(
            pb.ListMeetingsRequest(start_date=pb.NumberFilter(gte=1613729948000)),
            metadata=host.metadata,
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == {
        "start_date[gte]": ["is beyond year 9999: send unix time in seconds, not milliseconds"]
    }
