"""Clients in other languages (Node with @grpc/grpc-js, Java with grpc-java), built from the
stubs `make stubs` writes under gen/stubs/, against the real server: directly on its gRPC port
and through the gateway's port (Envoy), as a backend team would call it."""

from __future__ import annotations

from pathlib import Path

import pytest

from server import app
from tests.gateway.conftest import Gateway, _lua_errors_stay_zero, gateway  # noqa: F401

REPO = Path(__file__).resolve().parent.parent.parent
STUBS = REPO / "gen" / "stubs"
CLIENTS = REPO / "clients"
TARGETS = ["direct", "gateway"]


@pytest.fixture(params=TARGETS)
def target(
    request: pytest.FixtureRequest,
    grpc_server: app.Service,
    gateway: Gateway,  # noqa: F811
) -> str:
    """host:port of the server itself, or of the gateway in front of it."""
    port = grpc_server.port if request.param == "direct" else gateway.port
    return f"127.0.0.1:{port}"
