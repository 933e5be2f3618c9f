"""The connection-exhaustion probe of test_connection_limits.py, run as root in a network
namespace of its own (`unshare -n`), so that the firewall rule it installs touches nothing
outside: the real Envoy with a low connection cap, one address (127.0.0.1) holding connections
and reopening every one that closes, and another client (127.0.0.2) asking for a page; first
without and then with gateway/connlimit.nft. Prints what it measured as one JSON line."""

from __future__ import annotations

import http.client
import json
import selectors
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from server import settings, supervisor
from tests.gateway.conftest import start_envoy, stop_envoy

CAP = 200  # GATEWAY_MAX_CONNECTIONS here
PER_CLIENT = 50  # the rule's `ct count over` here
ATTACKER, CLIENT = "127.0.0.1", "127.0.0.2"
PHASE_SECONDS = 8.0


def _answered(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, 2, (CLIENT, 0))
    try:
        connection.request("GET", "/admin/favicon.svg")  # a direct response: no upstream needed
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


class _Attacker(threading.Thread):
    """Keeps CAP + 50 connections open from one address, reopening each one that closes."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port, self.stop, self.held = port, threading.Event(), 0
        self._open = selectors.DefaultSelector()

    def _connect(self) -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), 2, (ATTACKER, 0))
        except OSError:
            time.sleep(0.001)  # refused: try again at once, as an attacker would
            return
        sock.setblocking(False)
        self._open.register(sock, selectors.EVENT_READ)

    def run(self) -> None:
        while not self.stop.is_set():
            for key, _ in self._open.select(0.01):  # readable: closed by Envoy
                self._open.unregister(key.fileobj)
                key.fileobj.close()  # type: ignore[union-attr]
            if len(self._open.get_map()) < CAP + 50:
                self._connect()
            self.held = len(self._open.get_map())
        for key in list(self._open.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]


def _phase(port: int) -> dict[str, Any]:
    attacker = _Attacker(port)
    attacker.start()
    time.sleep(1.5)  # let it reach the cap
    tries = answered = 0
    began = time.monotonic()
    while time.monotonic() - began < PHASE_SECONDS:
        tries += 1
        answered += _answered(port)
        time.sleep(0.1)
    held = attacker.held
    attacker.stop.set()
    attacker.join()
    time.sleep(0.5)  # Envoy sees the attacker's connections close
    return {"tries": tries, "answered": answered, "attacker_held": held}


def _install_rule(port: int) -> None:
    rule = (settings.REPO / "gateway" / "connlimit.nft").read_text()
    rule = rule.replace("GATEWAY_PORT = 8080", f"GATEWAY_PORT = {port}")
    rule = rule.replace("ct count over 512", f"ct count over {PER_CLIENT}")
    subprocess.run(["nft", "-f", "-"], input=rule.encode(), check=True)


def main() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    tmp = Path(tempfile.mkdtemp())
    nothing = supervisor.free_port("127.0.0.1")  # no server behind it: pages are Envoy's own
    envoy, gateway = start_envoy(tmp, nothing, values={"GATEWAY_MAX_CONNECTIONS": CAP})
    try:
        without = _phase(gateway.port)
        _install_rule(gateway.port)
        with_rule = _phase(gateway.port)
    finally:
        stop_envoy(envoy)
    print(json.dumps({"cap": CAP, "per_client": PER_CLIENT, "without": without, "with": with_rule}))


if __name__ == "__main__":
    main()
