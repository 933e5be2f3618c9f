"""Connection exhaustion: one client holding idle connections up to Envoy's cap (lowered here
to what CI can open) does not lock other clients out for longer than a request's header
timeout: Envoy closes a connection that sends nothing after 10 s."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from server import app
from tests.gateway.conftest import raw_request, start_envoy, stop_envoy

CAP = 200


def _answered(port: int) -> bool:
    try:
        return raw_request("127.0.0.1", port, "GET", "/session", None, {}).status == 401
    except OSError:
        return False


def test_idle_connections_do_not_lock_new_clients_out(
    grpc_server: app.Service, tmp_path: Path
) -> None:
    envoy, gateway = start_envoy(
        tmp_path,
        grpc_server.port,
        settings_text={"10000 # MAX_CONNECTIONS": f"{CAP} # MAX_CONNECTIONS"},
    )
    idle: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 30
        while not _answered(gateway.port):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        for _ in range(CAP + 50):
            idle.append(socket.create_connection(("127.0.0.1", gateway.port), timeout=5))
        began = time.monotonic()
        assert not _answered(gateway.port)  # the cap is reached: a new client is refused
        while not _answered(gateway.port):
            assert time.monotonic() - began < 20, "new clients still locked out"
            time.sleep(0.25)
        served_after = time.monotonic() - began
        closed = 0
        for sock in idle:
            sock.settimeout(1)
            try:
                closed += sock.recv(1) == b""  # the end of the stream: closed by Envoy
            except ConnectionResetError:
                closed += 1
            except TimeoutError:
                pass  # still open
        print(
            f"\n{len(idle)} idle connections: new clients served again after {served_after:.1f} s"
        )
        assert served_after <= 12
        assert closed == len(idle)
    finally:
        for sock in idle:
            sock.close()
        stop_envoy(envoy)
