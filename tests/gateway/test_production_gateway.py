"""The gateway as production runs it: TLS from settings (HTTP/2 by ALPN, native gRPC over
TLS), HTTP liveness and readiness for load balancers, the drain on SIGTERM, and the
gateway-only mode in front of replicas found by DNS (GATEWAY_UPSTREAM)."""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from meetings.v1 import sessions_pb2, sessions_pb2_grpc
from server import settings, supervisor
from tests.conftest import PgDatabase
from tests.gateway.test_supervisor import Running, _environment, _start
from tests.replicas import Replica

ANNOUNCED = re.compile(r"^Meetings gateway: http://127\.0\.0\.1:(\d+) -> ")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, made by openssl."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def _get(port: int, path: str, context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    if context is None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    else:
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=context)
    try:
        connection.request("GET", path)
        reply = connection.getresponse()
        return reply.status, reply.read()
    finally:
        connection.close()


def _stop(running: Running) -> None:
    if running.process.poll() is None:
        running.process.send_signal(signal.SIGINT)
        running.process.wait(timeout=30)


def test_tls_serves_rest_over_http2_and_native_grpc(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    running = _start(tmp_path, GATEWAY_TLS_CERT_FILE=str(cert), GATEWAY_TLS_KEY_FILE=str(key))
    try:
        trusted = ssl.create_default_context(cafile=str(cert))
        status, body = _get(running.port, "/session", trusted)
        assert status == 401 and "errors" in json.loads(body)
        # ALPN offers HTTP/2 first.
        trusted.set_alpn_protocols(["h2", "http/1.1"])
        with socket.create_connection(("127.0.0.1", running.port), timeout=5) as raw:
            with trusted.wrap_socket(raw, server_hostname="localhost") as tls:
                assert tls.selected_alpn_protocol() == "h2"
        # Native gRPC over the same TLS port.
        credentials = grpc.ssl_channel_credentials(cert.read_bytes())
        with grpc.secure_channel(f"localhost:{running.port}", credentials) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="meetings.v1.MeetingService"), timeout=5
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.RpcError) as refused:
                sessions_pb2_grpc.SessionServiceStub(channel).GetSession(
                    sessions_pb2.GetSessionRequest(), timeout=5
                )
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # Plain HTTP to the TLS port gets no answer.
        with pytest.raises((http.client.HTTPException, OSError)):
            _get(running.port, "/session")
    finally:
        _stop(running)


def test_half_a_tls_setting_stops_make_run_before_it_starts(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "server.supervisor"],
        cwd=settings.REPO,
        env=_environment(tmp_path, GATEWAY_TLS_CERT_FILE=str(certificate[0])),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "GATEWAY_TLS_CERT_FILE and GATEWAY_TLS_KEY_FILE go together" in done.stderr
    assert not (tmp_path / "pg").exists()  # nothing was started


def test_health_and_the_drain_on_sigterm(tmp_path: Path) -> None:
    running = _start(tmp_path, GATEWAY_DRAIN_SECONDS="3")
    assert _get(running.port, "/healthz") == (200, b"ok\n")
    assert _get(running.port, "/readyz")[0] == 200
    assert _get(running.port, "/readyz?probe=1")[0] == 404  # the exact path only

    began = time.monotonic()
    running.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 2
    while _get(running.port, "/readyz")[0] == 200:
        assert time.monotonic() < deadline, "/readyz still answers 200"
        time.sleep(0.05)
    # Out of rotation, but still serving while load balancers notice.
    assert _get(running.port, "/readyz")[0] == 503
    assert _get(running.port, "/healthz")[0] == 200
    assert _get(running.port, "/session")[0] == 401
    assert running.process.wait(timeout=30) == 0
    assert time.monotonic() - began >= 3


@pytest.fixture
def gateway_only(tmp_path: Path) -> Iterator[tuple[Running, int]]:
    """The supervisor in gateway-only mode in front of `localhost:<port>`, no server yet."""
    port = supervisor.free_port("127.0.0.1")
    process = subprocess.Popen(
        [sys.executable, "-m", "server.supervisor"],
        cwd=settings.REPO,
        env=_environment(tmp_path, GATEWAY_UPSTREAM=f"localhost:{port}"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        match = ANNOUNCED.match(line)
        if match:
            break
    assert match is not None, "".join(seen)
    running = Running(process, int(match.group(1)), None)  # type: ignore[arg-type]
    try:
        yield running, port
    finally:
        _stop(running)


def test_the_gateway_alone_finds_replicas_by_name(
    gateway_only: tuple[Running, int], postgres: PgDatabase, pool: Any, tmp_path: Path
) -> None:
    running, port = gateway_only
    assert not (tmp_path / "pg").exists()  # no database of its own
    assert _get(running.port, "/healthz")[0] == 200
    assert _get(running.port, "/readyz")[0] == 503  # no replica yet

    replica = Replica(port, tmp_path / "replica.log")
    replica.start(postgres)
    try:
        deadline = time.monotonic() + 15  # DNS refresh (5 s) and a passing health check
        while _get(running.port, "/readyz")[0] != 200:
            assert time.monotonic() < deadline, "the replica was not found"
            time.sleep(0.2)
        assert _get(running.port, "/session")[0] == 401  # the whole path
    finally:
        replica.stop(signal.SIGTERM)
    deadline = time.monotonic() + 10
    while _get(running.port, "/readyz")[0] != 503:
        assert time.monotonic() < deadline, "/readyz still 200 with no replica"
        time.sleep(0.2)
