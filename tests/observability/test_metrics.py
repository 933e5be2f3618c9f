"""GET /metrics before and after a known workload (3 creates, 1 failed update, 10 reminders),
read with prometheus_client's own parser of the text format: a server process alone (its
endpoint), and two under the supervisor (added up from their multiprocess files, with Envoy's
stats beside them)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from meetings.v1 import meetings_pb2 as pb
from meetings.v1 import meetings_pb2_grpc
from server.supervisor import free_port
from tests.conftest import Account, PgDatabase
from tests.delivery_helpers import enqueue_reminders, wait_until
from tests.gateway.conftest import raw_request
from tests.metrics_scrape import Samples, scrape, total, value
from tests.notifications.conftest import SmtpServer
from tests.observability.conftest import Supervised, metric_names_in_rules, supervise
from tests.replicas import Replica
from tests.rpc_helpers import create

MISSING_ID = "0" * 24


def rpc(method: str, service: str = "meetings.v1.MeetingService") -> dict[str, str]:
    return {"grpc_service": service, "grpc_method": method, "grpc_type": "unary"}


def assert_workload_counted(before: Samples, after: Samples) -> None:
    """The deltas are exactly 3 creates, 1 failed update and 10 reminders sent."""

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    create, update = rpc("CreateMeeting"), rpc("UpdateMeeting")
    assert delta("grpc_server_started_total", **create) == 3
    assert delta("grpc_server_handled_total", **create, grpc_code="OK") == 3
    assert delta("grpc_server_handled_total", **update, grpc_code="NOT_FOUND") == 1
    assert delta("grpc_server_handled_total", **update) == 1
    assert delta("grpc_server_handling_seconds_count", **create) == 3
    assert delta("grpc_server_handling_seconds_bucket", **create, le="+Inf") == 3
    assert delta("grpc_server_handling_seconds_sum", **create) > 0
    # Nothing else was called on the API (health checks are not API calls).
    service_calls = delta("grpc_server_handled_total") - delta(
        "grpc_server_handled_total", grpc_method="GetSession"
    )
    assert service_calls == 4
    sent = {"kind": "email", "topic": "reminder", "outcome": "sent"}
    assert delta("meetings_deliveries_total", **sent) == 10
    assert delta("meetings_deliveries_total") == 10
    assert delta("meetings_reminder_lateness_seconds_count") == 10
    assert delta("meetings_reminder_lateness_seconds_bucket", le="+Inf") == 10
    # Due at once, sent within seconds: all under a minute late.
    assert delta("meetings_reminder_lateness_seconds_bucket", le="60.0") == 10
    assert value(after, "meetings_database_up") == 1
    assert value(after, "meetings_outbox_messages", kind="email", state="due") == 0
    assert value(after, "meetings_outbox_oldest_due_age_seconds", kind="email") == 0
    assert value(after, "meetings_webhook_endpoint_state", state="unset") == 1
    assert total(after, "meetings_build_info") == 1


def test_a_server_alone_counts_the_workload(
    postgres: PgDatabase, db: Any, accounts: dict[str, Account], smtp: SmtpServer, tmp_path: Path
) -> None:
    metrics_port = free_port("127.0.0.1")
    replica = Replica(
        free_port("127.0.0.1"),
        tmp_path / "server.log",
        {
            "METRICS_PORT": str(metrics_port),
            "DELIVERY_ENABLED": "true",
            "SMTP_URL": smtp.url,
            "DELIVERY_POLL_SECONDS": "0.2",
            "DATA_DIR": str(tmp_path),
        },
    )
    replica.start(postgres)
    try:
        before = scrape(metrics_port)
        with grpc.insecure_channel(f"127.0.0.1:{replica.port}") as channel:
            stub = meetings_pb2_grpc.MeetingServiceStub(channel)
            for n in range(3):
                create(stub, accounts["host"], name=f"Planning {n}")
            with pytest.raises(grpc.RpcError) as failed:
                stub.UpdateMeeting(
                    pb.UpdateMeetingRequest(id=MISSING_ID, meeting=pb.MeetingInput(name="x")),
                    metadata=accounts["host"].metadata,
                )
            assert failed.value.code() == grpc.StatusCode.NOT_FOUND
        enqueue_reminders(db, 1, 10, due_in=0, spread=0)
        wait_until(lambda: len(smtp.received) >= 10, timeout=30)
        after = _settled(metrics_port, 10)
    finally:
        replica.stop(15)
    assert len(smtp.received) == 10
    assert_workload_counted(before, after)
    # The process's own CPU and memory (the bench reads its RSS).
    assert value(after, "process_resident_memory_bytes") > 10e6
    assert value(after, "meetings_db_pool_connections_max") == 20
    # Every metric the example alert rules read is served.
    assert metric_names_in_rules() <= {name for name, _ in after}


def _settled(port: int, reminders: int) -> Samples:
    """A scrape once the sends are recorded (an email is received just before its record)."""
    deadline = time.monotonic() + 10
    while True:
        found = scrape(port)
        if total(found, "meetings_deliveries_total") >= reminders or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


@pytest.fixture
def supervised(postgres: PgDatabase, smtp: SmtpServer, tmp_path: Path) -> Iterator[Supervised]:
    """`make run` with two server processes on the tests' database, and its /metrics."""
    with supervise(postgres, smtp, tmp_path, SERVER_PROCESSES="2") as running:
        yield running


def test_two_supervised_processes_are_added_up_with_envoys_stats(
    supervised: Supervised, db: Any, accounts: dict[str, Account], smtp: SmtpServer
) -> None:
    before = scrape(supervised.metrics_port)
    headers = {"CB-Token": accounts["host"].token, "Content-Type": "application/json"}
    meeting = {"name": "Planning", "start_date": 1613729948, "end_date": 1613731012}
    for _ in range(3):
        reply = raw_request(
            "127.0.0.1", supervised.gateway_port, "POST", "/meetings", json.dumps(meeting), headers
        )
        assert reply.status == 200, reply
    reply = raw_request(
        "127.0.0.1",
        supervised.gateway_port,
        "PUT",
        f"/meetings/{MISSING_ID}",
        json.dumps({"name": "x"}),
        headers,
    )
    assert reply.status == 404, reply
    enqueue_reminders(db, 1, 10, due_in=0, spread=0)
    wait_until(lambda: len(smtp.received) >= 10, timeout=30)
    after = _settled(supervised.metrics_port, 10)
    assert len(smtp.received) == 10
    assert_workload_counted(before, after)
    assert value(after, "meetings_db_pool_connections_max") == 2 * 20  # both processes
    # Envoy's own stats, as Envoy names them, beside ours.
    assert value(after, "meetings_envoy_up") == 1
    assert (
        value(after, "envoy_http_downstream_rq_total", envoy_http_conn_manager_prefix="gateway")
        >= 4
    )
    assert total(after, "envoy_cluster_upstream_rq_total", envoy_cluster_name="meetings_grpc") >= 4
