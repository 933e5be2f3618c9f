"""The image's HEALTHCHECK: exit 0 when this container's role is healthy, 1 otherwise.

A gateway (GATEWAY_UPSTREAM set) is healthy while Envoy answers `GET /healthz` on its own port;
its readiness (`/readyz`, some replica SERVING) is for the load balancer in front, not for the
container: a database outage must not make the orchestrator kill every gateway. A server is
healthy while its grpc.health.v1 reports SERVING (NOT_SERVING while the database is down, or
while it drains on SIGTERM).

The settings are read as the processes read them (server.settings), so ports and TLS agree.
"""

from __future__ import annotations

import http.client
import ssl
import sys

from server.settings import GatewaySettings, Settings, SettingsError
from server.supervisor import grpc_serving


def gateway_alive(gateway: GatewaySettings, timeout: float = 3.0) -> bool:
    # Loopback, this container's own Envoy: the certificate names the public host, not
    # 127.0.0.1, and what is checked here is that Envoy answers, so it is not verified.
    connection: http.client.HTTPConnection
    if gateway.gateway_tls_cert_file is not None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection(
            "127.0.0.1", gateway.gateway_port, timeout=timeout, context=context
        )
    else:
        connection = http.client.HTTPConnection("127.0.0.1", gateway.gateway_port, timeout=timeout)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def main() -> int:
    try:
        settings = Settings.from_env()
        gateway = GatewaySettings.from_env()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 1
    if gateway.gateway_upstream is not None:
        healthy = gateway_alive(gateway)
    else:
        healthy = grpc_serving(f"127.0.0.1:{settings.grpc_port}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
