"""The image's HEALTHCHECK: exit 0 when this container's role is healthy, 1 otherwise.

A gateway (GATEWAY_UPSTREAM set) is healthy while Envoy answers `GET /healthz` on its own port;
its readiness (`/readyz`, some replica SERVING) is for the load balancer in front, not for the
container: a database outage must not make the orchestrator kill every gateway. A server is
healthy while its grpc.health.v1 reports SERVING (NOT_SERVING while the database is down, or
while it drains on SIGTERM).

The settings are read as the processes read them (server.settings), so ports and TLS agree.
"""

from __future__ import annotations

import sys

from server.settings import GatewaySettings, Settings, SettingsError
from server.supervisor import gateway_status, grpc_serving


def main() -> int:
    try:
        settings = Settings.from_env()
        gateway = GatewaySettings.from_env()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 1
    if gateway.gateway_upstream is not None:
        # Loopback: this container's own Envoy, whatever address it listens on.
        healthy = gateway_status(gateway, "/healthz", host="127.0.0.1") == 200
    else:
        healthy = grpc_serving(f"127.0.0.1:{settings.grpc_port}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
