"""Clients in other languages (Node with @grpc/grpc-js, Java with grpc-java), built from the
stubs `make stubs` writes under gen/stubs/, against the real server: directly on its gRPC port
and through the gateway's port (Envoy), as a backend team would call it (the `target`
fixture of tests/gateway/conftest.py)."""

from __future__ import annotations

from pathlib import Path

from tests.gateway.conftest import _lua_errors_stay_zero, gateway, target  # noqa: F401

REPO = Path(__file__).resolve().parent.parent.parent
STUBS = REPO / "gen" / "stubs"
CLIENTS = REPO / "clients"
