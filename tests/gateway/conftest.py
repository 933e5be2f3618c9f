"""A real Envoy (from envoy.yaml) in front of the test session's real gRPC server.

REST calls go through `Gateway.call`, which also checks what every REST reply must satisfy:
no grpc-* or internal cb-* headers, and a JSON body on every error. After each test that uses
the gateway, the Lua filter's error counter must still be 0 (a Lua runtime error lets a request
through unmodified instead of failing it, so only the counter shows it).
"""

from __future__ import annotations

import http.client
import json
import subprocess
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from server import app, settings, supervisor
from tests.conftest import Account, make_account, truncate

ENVOY = settings.GatewaySettings().envoy_bin
INTERNAL_HEADERS = ("cb-http-status", "cb-error-body")


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def json(self) -> Any:
        return json.loads(self.body)


class Gateway:
    def __init__(self, host: str, port: int, admin_port: int) -> None:
        self.host, self.port, self.admin_port = host, port, admin_port
        self.base = f"http://{host}:{port}"

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json_body: Any = None,
        body: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """One REST request on a new connection; checks the reply's headers and error body."""
        sent = dict(headers or {})
        if token is not None:
            sent["CB-Token"] = token
        if json_body is not None:
            body = json.dumps(json_body)
            sent.setdefault("Content-Type", "application/json")
        elif body is not None and "Content-Type" not in sent:
            # What curl -d and the JS SDK send.
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        reply = raw_request(self.host, self.port, method, path, body, sent)
        for key, _ in reply.headers:
            assert not key.lower().startswith("grpc-"), reply.headers
            assert key.lower() not in INTERNAL_HEADERS, reply.headers
        if reply.status >= 400:
            assert reply.header("content-type") == "application/json", reply
            assert "errors" in reply.json(), reply
        return reply

    def stat(self, name: str) -> int:
        reply = raw_request(
            "127.0.0.1", self.admin_port, "GET", f"/stats?filter=^{name}$", None, {}
        )
        for line in reply.body.decode().splitlines():
            key, _, value = line.partition(": ")
            if key == name:
                return int(value)
        raise AssertionError(f"no stat {name!r} in {reply.body!r}")


def raw_request(
    host: str,
    port: int,
    method: str,
    path: str,
    body: str | bytes | None,
    headers: Mapping[str, str],
) -> Reply:
    connection = http.client.HTTPConnection(host, port, timeout=15)
    try:
        connection.request(method, path, body=body, headers=dict(headers))
        response = connection.getresponse()
        return Reply(response.status, response.getheaders(), response.read())
    finally:
        connection.close()


def query(**params: str) -> str:
    return urllib.parse.urlencode(params)


def start_envoy(
    tmp: Path,
    grpc_port: int,
    *more_ports: int,
    settings_text: dict[str, str] | None = None,
    values: dict[str, str | int] | None = None,
) -> tuple[subprocess.Popen[bytes], Gateway]:
    """Envoy from envoy.yaml on free loopback ports, in front of the server on `grpc_port`
    (and of more replicas on `more_ports`); `values` renders more `# NAME` placeholders, and
    `settings_text` replaces text in the config."""
    port = supervisor.free_port("127.0.0.1")
    admin_port = supervisor.free_port("127.0.0.1")
    config = tmp / "envoy.yaml"
    rendered = supervisor.render_envoy_config(
        (settings.REPO / "envoy.yaml").read_text(),
        {"GATEWAY_PORT": port, "ENVOY_ADMIN_PORT": admin_port, "GRPC_PORT": grpc_port}
        | (values or {}),
    )
    for before, after in (settings_text or {}).items():
        assert before in rendered, before
        rendered = rendered.replace(before, after)
    config.write_text(supervisor.with_server_ports(rendered, [grpc_port, *more_ports]))
    log = (tmp / "envoy.log").open("wb")
    process = subprocess.Popen(
        [str(ENVOY), "-c", str(config), "-l", "warning", "--disable-hot-restart"],
        cwd=settings.REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    gateway = Gateway("127.0.0.1", port, admin_port)
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, (tmp / "envoy.log").read_text()
        try:
            ready = raw_request("127.0.0.1", admin_port, "GET", "/ready", None, {})
            if ready.status == 200:
                return process, gateway
        except OSError:
            pass
        assert time.monotonic() < deadline, "Envoy did not start"
        time.sleep(0.1)


def stop_envoy(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def gateway(
    grpc_server: app.Service, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    process, gateway = start_envoy(tmp_path_factory.mktemp("envoy"), grpc_server.port)
    # Ready once the health check has passed and a REST call goes through.
    deadline = time.monotonic() + 30
    while gateway.call("GET", "/session").status != 401:
        assert time.monotonic() < deadline, "the gateway did not reach the server"
        time.sleep(0.1)
    yield gateway
    stop_envoy(process)


@pytest.fixture(params=["direct", "gateway"])
def target(
    request: pytest.FixtureRequest,
    grpc_server: app.Service,
    gateway: Gateway,
) -> str:
    """host:port for native gRPC: the server itself, or the gateway in front of it."""
    port = grpc_server.port if request.param == "direct" else gateway.port
    return f"127.0.0.1:{port}"


@pytest.fixture(autouse=True)
def _lua_errors_stay_zero(request: pytest.FixtureRequest) -> Iterator[None]:
    gateway: Gateway | None = None
    if "gateway" in request.fixturenames:
        gateway = request.getfixturevalue("gateway")
    yield
    if gateway is not None:
        assert gateway.stat("http.gateway.lua.errors") == 0


@pytest.fixture(scope="module")
def module_accounts(pool: Any) -> dict[str, Account]:
    """Like `accounts`, made once for a module whose tests change nothing (argon2 is slow)."""
    with pool.connection_context():
        truncate(pool)
        return {
            "host": make_account("host", "host@example.com"),
            "attendee": make_account("attendee", "attendee@example.com"),
            "stranger": make_account("stranger", "stranger@example.com"),
        }


@pytest.fixture
def conn(pool: Any) -> Iterator[Any]:
    """The database, as it is (not emptied), inside a connection context."""
    with pool.connection_context():
        yield pool


def db_snapshot(db: Any) -> list[Any]:
    """Every row that a request could change: meetings, attendees, sessions, chats, outbox."""
    rows: list[Any] = []
    tables = [
        row[0]
        for row in db.execute_sql(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename NOT IN ('schema_migrations', 'activity_minutes') ORDER BY tablename"
        ).fetchall()
    ]
    for table in tables:
        rows.append((table, db.execute_sql(f"SELECT * FROM {table} ORDER BY 1").fetchall()))  # noqa: S608
    return rows


# Not data but telemetry, left out of both: every process adds its request counts to
# activity_minutes every few seconds, refusals included (the dashboard shows 4xx).
# The one table a refusal may change: a failed sign-in (401) is counted (and a 429 is what the
# counting is for). Every other refusal, bad input included, changes no row at all.
ATTEMPT_COUNTERS = "rate_limit_counters"


def db_fingerprint(db: Any, status: int = 400) -> list[Any]:
    """A digest of every table db_snapshot covers, computed in the database: a cheap equality
    check for loops of thousands of requests whose tables keep growing. For a 401 or 429
    (`status`), without the attempt counters."""
    tables = [
        row[0]
        for row in db.execute_sql(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename NOT IN ('schema_migrations', 'activity_minutes') ORDER BY tablename"
        ).fetchall()
    ]
    # Table names come from pg_tables, not from a request.
    if status in (401, 429):
        tables.remove(ATTEMPT_COUNTERS)
    digest = " UNION ALL ".join(
        f"SELECT '{table}', count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"  # noqa: S608
        f" FROM {table} t"
        for table in tables
    )
    return list(db.execute_sql(digest).fetchall())


MEETING_KEYS = {
    "_id", "name", "start_date", "end_date", "attendees", "public", "scheduled", "record",
    "chat_dialog_id", "created_at", "updated_at", "host_id", "notify", "notify_before",
    "timezone",
}  # fmt: skip


def create_meeting(gateway: Gateway, token: str, **fields: Any) -> dict[str, Any]:
    body = {"name": "Weekly sync", "start_date": 1613729948, "end_date": 1613731012} | fields
    reply = gateway.call("POST", "/meetings", token=token, json_body=body)
    assert reply.status == 200, reply
    meeting: dict[str, Any] = reply.json()
    return meeting
