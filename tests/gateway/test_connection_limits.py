"""Connection exhaustion: one client holding idle connections up to Envoy's cap (lowered here
to what CI can open) does not lock other clients out for longer than a request's header
timeout (Envoy closes a connection that sends nothing after 10 s); and one that keeps reopening
them is held to its own share by gateway/connlimit.nft."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server import app, settings
from tests.gateway import connlimit_probe
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
        values={"GATEWAY_MAX_CONNECTIONS": CAP},
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


@pytest.mark.skipif(
    os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("nft")),
    reason="the per-client rule is a firewall rule: needs root, unshare and nft (make test "
    "installs nftables where it can)",
)
def test_a_client_reopening_connections_is_held_to_its_own_share() -> None:
    probe = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "tests.gateway.connlimit_probe"],
        cwd=settings.REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    figures = json.loads(probe.stdout.splitlines()[-1])
    without, with_rule = figures["without"], figures["with"]
    print(
        f"\none address reopening connections, cap {figures['cap']}: other client answered "
        f"{without['answered']}/{without['tries']} without the rule, "
        f"{with_rule['answered']}/{with_rule['tries']} with it (attacker held "
        f"{with_rule['attacker_held']})"
    )
    # Without the rule the attack works: the other client is mostly refused.
    assert without["attacker_held"] > connlimit_probe.CAP * 0.9
    assert without["answered"] < without["tries"] / 2
    # With it, the attacker holds its share and every other request is answered.
    assert with_rule["attacker_held"] <= connlimit_probe.PER_CLIENT
    assert with_rule["answered"] == with_rule["tries"]
