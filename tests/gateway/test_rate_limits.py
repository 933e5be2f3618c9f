"""Sign-in, sign-up and guest-session limits: 429 with Retry-After in the hosted API's error
shape, per source address and per login, counted alike by every replica (two servers on one
database here, behind the real Envoy)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from meetings.v1 import sessions_pb2, sessions_pb2_grpc
from server import app
from server.domain import applications, auth
from server.settings import Settings
from tests.conftest import PgDatabase
from tests.gateway.conftest import Gateway, start_envoy, stop_envoy
from tests.rpc_helpers import error_info, retry_delay, trailers

PASSWORD = "correct horse battery"
LIMITS = {
    "rate_sign_in_per_address": (6, 60),
    "rate_failed_sign_in_per_login": (3, 900),
    "rate_sign_up_per_address": (2, 3600),
    "rate_guest_per_address": (2, 3600),
}


@pytest.fixture
def replicas(
    postgres: PgDatabase, pool: Any, grpc_server: app.Service, db: Any
) -> Iterator[list[app.Service]]:
    """Two servers with low limits on the test database."""
    settings = replace(grpc_server.settings, **LIMITS)  # type: ignore[arg-type]
    servers = [app.Service(settings, postgres.url, pool) for _ in range(2)]
    for server in servers:
        server.start()
    yield servers
    for server in servers:
        server.stop(grace=1, drain=0)


@pytest.fixture
def limited(replicas: list[app.Service], tmp_path: Path) -> Iterator[Gateway]:
    envoy, gateway = start_envoy(tmp_path, replicas[0].port, replicas[1].port)
    try:
        yield gateway
    finally:
        stop_envoy(envoy)


def _sign_in(gateway: Gateway, login: str, password: str) -> Any:
    body = {"user": {"login": login, "password": password}}
    return gateway.call("POST", "/session", json_body=body)


def test_failed_sign_ins_lock_the_login_with_retry_after(limited: Gateway) -> None:
    auth.create_user("victim", PASSWORD)
    statuses = [_sign_in(limited, "victim", "wrong guess").status for _ in range(3)]
    assert statuses == [401, 401, 401]
    locked = _sign_in(limited, "Victim", PASSWORD)  # the right password is refused too
    assert locked.status == 429
    retry_after = int(locked.header("retry-after") or "0")
    assert 800 < retry_after <= 900
    assert locked.json() == {
        "errors": {"base": [f"Too many requests, try again in {retry_after} s"]}
    }
    # Another login from the same address is still let in.
    auth.create_user("bystander", PASSWORD)
    assert _sign_in(limited, "bystander", PASSWORD).status == 200


def test_sign_ins_per_address_are_counted_by_every_replica(
    replicas: list[app.Service], db: Any
) -> None:
    """Direct gRPC with X-Forwarded-For (as Envoy sends it) from two addresses, alternating
    between the replicas: one address is refused after 6, the other is not."""
    auth.create_user("walt", PASSWORD)
    request = sessions_pb2.CreateSessionRequest(
        user=sessions_pb2.SessionUser(login="walt", password=PASSWORD)
    )
    codes = []
    for attempt in range(8):
        server = replicas[attempt % 2]
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = sessions_pb2_grpc.SessionServiceStub(channel)
            metadata = (("x-forwarded-for", "198.51.100.9, 203.0.113.7"),)
            try:
                stub.CreateSession(request, metadata=metadata)
                codes.append("OK")
            except grpc.RpcError as exc:
                codes.append(exc.code().name)
                refused = exc
    assert codes == ["OK"] * 6 + ["RESOURCE_EXHAUSTED"] * 2
    wait = int(trailers(refused)["retry-after"])
    assert (error_info(refused), retry_delay(refused)) == (("RATE_LIMITED", "meetings-api"), wait)
    # Only what Envoy appended counts: another last address is another client.
    with grpc.insecure_channel(f"127.0.0.1:{replicas[0].port}") as channel:
        stub = sessions_pb2_grpc.SessionServiceStub(channel)
        other = (("x-forwarded-for", "203.0.113.7, 203.0.113.8"),)
        assert stub.CreateSession(request, metadata=other).session.token


def test_sign_ups_and_guest_sessions_per_address(limited: Gateway) -> None:
    key = {"CB-AuthKey": applications.current().auth_key}
    signups = [
        limited.call("POST", "/users", headers=key,
                     json_body={"user": {"login": f"new{i}", "password": PASSWORD}}).status
        for i in range(3)
    ]  # fmt: skip
    assert signups == [200, 200, 429]
    guest = {"user": {"guest": "1", "full_name": "Visitor"}}
    guests = [limited.call("POST", "/session", json_body=guest).status for _ in range(3)]
    assert guests == [200, 200, 429]
    refused = limited.call("POST", "/session", json_body=guest)
    assert refused.header("retry-after") and refused.json()["errors"]["base"][0].startswith(
        "Too many requests"
    )


def test_rate_limit_settings_are_read_and_checked() -> None:
    settings = Settings.from_env({"RATE_SIGN_IN_PER_ADDRESS": "100/30"})
    assert settings.rate_sign_in_per_address == (100, 30)
    with pytest.raises(ValueError, match="RATE_GUEST_PER_ADDRESS must be ATTEMPTS/SECONDS"):
        Settings.from_env({"RATE_GUEST_PER_ADDRESS": "lots"})


def test_a_burst_of_sign_ins_gets_answers_not_an_outage(gateway: Gateway, db: Any) -> None:
    """25 sign-ins at once (under the per-address limit): each is answered 200, or 429 when it
    waited too long for a hashing slot; none gets a 5xx (before the slots, the hashes took every
    worker, health checks timed out and Envoy took the only replica out)."""
    for i in range(25):
        auth.create_user(f"burst{i}", PASSWORD)

    def sign_in(i: int) -> int:
        return int(_sign_in(gateway, f"burst{i}", PASSWORD).status)

    with concurrent.futures.ThreadPoolExecutor(max_workers=25) as pool:
        statuses = list(pool.map(sign_in, range(25)))
    print(f"\n25 sign-ins at once: {statuses.count(200)} x 200, {statuses.count(429)} x 429")
    assert set(statuses) <= {200, 429} and 200 in statuses, statuses
    after = [_sign_in(gateway, f"burst{i}", PASSWORD).status for i in range(3)]
    assert after == [200, 200, 200]  # the replica stayed in
