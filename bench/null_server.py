"""The framework ceiling: the service's grpcio server set-up with handlers that do no database work.

    python -m bench.null_server      # GRPC_PORT, GRPC_WORKERS and NULL_LIST_SIZE from the env

The same thread pool size and server options as server.app; every MeetingService call answers
a canned Meeting (a list answers NULL_LIST_SIZE of them, as many as the real list returns).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from concurrent import futures
from datetime import UTC, datetime
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2_grpc

from meetings.v1 import meetings_pb2, meetings_pb2_grpc
from server.domain import meeting_values
from server.domain.meeting_values import Attendee
from server.settings import Settings
from server.transport import convert

_STAMP = datetime(2026, 1, 1, tzinfo=UTC)
CANNED = convert.meeting_to_pb(
    meeting_values.MeetingView(
        id="0200000000000000000000aa",
        name="Meeting 170",
        start_date=1_767_225_600,
        end_date=1_767_229_200,
        attendees=(Attendee(id=8), Attendee(id=14)),
        public=False,
        scheduled=False,
        record=False,
        chat_dialog_id=None,
        created_at=_STAMP,
        updated_at=_STAMP,
        host_id=1,
        notify=False,
        notify_before=None,
        timezone=None,
        version=1,
    )
)


class NullMeetingService(meetings_pb2_grpc.MeetingServiceServicer):
    def __init__(self, list_size: int) -> None:
        self.list_size = list_size

    def CreateMeeting(self, request: Any, context: grpc.ServicerContext) -> meetings_pb2.Meeting:
        return CANNED

    def GetMeeting(self, request: Any, context: grpc.ServicerContext) -> meetings_pb2.Meeting:
        return CANNED

    def UpdateMeeting(self, request: Any, context: grpc.ServicerContext) -> meetings_pb2.Meeting:
        return CANNED

    def ListMeetings(
        self, request: Any, context: grpc.ServicerContext
    ) -> Iterator[meetings_pb2.Meeting]:
        return iter([CANNED] * self.list_size)


def main() -> None:
    settings = Settings.from_env()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.grpc_workers, thread_name_prefix="rpc"),
        options=[("grpc.so_reuseport", 0)],
    )
    list_size = int(os.environ.get("NULL_LIST_SIZE", "3"))
    # Only the four benchmarked calls are answered; the others stay UNIMPLEMENTED.
    servicer = NullMeetingService(list_size)  # type: ignore[abstract]
    meetings_pb2_grpc.add_MeetingServiceServicer_to_server(servicer, server)
    health_pb2_grpc.add_HealthServicer_to_server(
        health.HealthServicer(experimental_non_blocking=True), server
    )
    server.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port}")
    server.start()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stopping.set())
    stopping.wait()
    server.stop(1).wait()


if __name__ == "__main__":
    main()
