"""Traces exported to a real OTLP/HTTP receiver (tests/otlp_receiver.py) by Envoy and the
server under the supervisor: a REST call's trace runs Envoy -> RPC -> SQL (and the outbox
write) under the client's trace id; the email it caused is delivered in a span linked to it;
the log lines written inside spans carry their ids."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Account, PgDatabase
from tests.gateway.conftest import raw_request
from tests.notifications.conftest import SmtpServer
from tests.observability.conftest import Supervised, supervise
from tests.otlp_receiver import Receiver, Span, start_receiver

CREATE = "/meetings.v1.MeetingService/CreateMeeting"
SECRET = "query-secret-7f3a"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from start_receiver()


@pytest.fixture
def traced(
    postgres: PgDatabase, smtp: SmtpServer, tmp_path: Path, receiver: Receiver
) -> Iterator[Supervised]:
    settings = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        # The SDK's batch goes out every 200 ms instead of 5 s (a standard OTel variable).
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    with supervise(postgres, smtp, tmp_path, **settings) as running:
        yield running


def spans_of(found: list[Span], trace_id: str) -> list[Span]:
    return [span for span in found if span.trace_id == trace_id]


def test_a_rest_call_is_traced_from_envoy_to_sql_and_its_email_links_back(
    traced: Supervised, receiver: Receiver, accounts: dict[str, Account], smtp: SmtpServer
) -> None:
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    headers = {
        "CB-Token": accounts["host"].token,
        "Content-Type": "application/json",
        "traceparent": f"00-{trace_id}-{client_span}-01",
    }
    meeting = {
        "name": "Traced",
        "start_date": 1894694400,
        "end_date": 1894698000,
        "attendees": [{"email": "guest@example.com"}],
        "notify": True,
    }
    reply = raw_request(
        "127.0.0.1", traced.gateway_port, "POST", "/meetings", json.dumps(meeting), headers
    )
    assert reply.status == 200, reply
    # Queries carry signed links and search terms: traces name the path only.
    search = f"/meetings?name={SECRET}&limit=5"
    raw_request("127.0.0.1", traced.gateway_port, "GET", search, None, headers)
    assert len(smtp.wait_for(1)) == 1  # the invitation

    def complete(found: list[Span]) -> bool:
        mine = spans_of(found, trace_id)
        delivered = [s for s in found if s.name == "deliver email" and trace_id in s.links]
        services = {s.service for s in mine}
        searched = [s for s in found if s.attributes.get("http.status_code") == "422"]
        return {"meetings-gateway", "meetings-api"} <= services and bool(delivered and searched)

    # Envoy sends its spans every 5 s.
    found = receiver.wait_for(complete, timeout=20)
    mine = spans_of(found, trace_id)
    gateway = [s for s in mine if s.service == "meetings-gateway"]
    server = [s for s in mine if s.service == "meetings-api"]
    assert gateway and server, [(s.service, s.name) for s in found]

    # Envoy continues the client's trace, and the RPC's span is its child.
    assert {s.parent_span_id for s in gateway} & {client_span}
    (rpc,) = [s for s in server if s.name == CREATE]
    assert rpc.parent_span_id in {s.span_id for s in gateway}
    assert rpc.attributes["rpc.grpc.status_code"] == 0
    # Each SQL statement is a span under the RPC (directly, or under the outbox write).
    server_ids = {s.span_id for s in server}
    statements = [s for s in server if s.attributes.get("db.system") == "postgresql"]
    assert len(statements) >= 3
    assert all(s.parent_span_id in server_ids for s in statements)
    assert any("INSERT INTO meetings" in str(s.attributes.get("db.statement")) for s in statements)
    (written,) = [s for s in server if s.name == "outbox write"]
    assert written.parent_span_id in server_ids
    assert written.attributes["messaging.destination.name"] == "email.invitation"
    # No statement's parameters are exported (they are users' data), nor any query.
    assert not any("guest@example.com" in json.dumps(s.attributes) for s in found)
    assert not any(SECRET in json.dumps(s.attributes) for s in found)
    assert {"/meetings"} == {s.attributes["http.url"] for s in gateway if s.name == "ingress"}

    # The email went out in a trace of its own, linked to the request that wrote its row.
    (delivery,) = [s for s in found if s.name == "deliver email" and trace_id in s.links]
    assert delivery.trace_id != trace_id
    assert delivery.attributes["messaging.destination.name"] == "email.invitation"
    sent_logs = [_json(line) for line in traced.output if '"email sent"' in line]
    assert any(
        entry.get("trace_id") == delivery.trace_id and entry.get("span_id") == delivery.span_id
        for entry in sent_logs
    ), sent_logs


def _json(line: str) -> dict[str, Any]:
    try:
        found = json.loads(line)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}
