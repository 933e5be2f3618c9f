"""Envoy's access log: one JSON line per request, and never a query string (download links
carry their signatures there, valid for an hour; `%PATH(WQ:...)%` printed them)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from meetings.v1 import sessions_pb2, sessions_pb2_grpc
from server import app
from tests.gateway.conftest import start_envoy, stop_envoy


def _access_lines(log: Path, wanted: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15
    while True:
        lines = [
            json.loads(line)
            for line in log.read_text(errors="replace").splitlines()
            if '"logger":"envoy.access"' in line
        ]
        if len(lines) >= wanted or time.monotonic() > deadline:
            return lines
        time.sleep(0.2)


def test_the_access_log_keeps_no_query_strings(grpc_server: app.Service, tmp_path: Path) -> None:
    envoy, gateway = start_envoy(tmp_path, grpc_server.port)
    try:
        secret = "0f" * 32
        sent = [
            f"/recordings/0123456789abcdef01234567/download?expires=1999999999&signature={secret}",
            f"/meetings.json?start_date[gte]=1&limit=5&token={secret}",
            f"/session?{secret}",
        ]
        for path in sent:
            assert gateway.call("GET", path).status in (401, 403, 422)
        # A native gRPC call that fails: HTTP 200, and its gRPC status in the log.
        with grpc.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = sessions_pb2_grpc.SessionServiceStub(channel)
            with pytest.raises(grpc.RpcError):
                stub.GetSession(sessions_pb2.GetSessionRequest(), timeout=10)
    finally:
        stop_envoy(envoy)
    lines = _access_lines(tmp_path / "envoy.log", len(sent) + 1)
    native = [line for line in lines if line["protocol"] == "HTTP/2"]
    assert [line["grpc_status"] for line in native] == ["Unauthenticated"], native
    text = (tmp_path / "envoy.log").read_text(errors="replace")
    assert secret not in text and "signature=" not in text
    paths = [line["path"] for line in lines]
    assert "/recordings/0123456789abcdef01234567/download" in paths, paths
    rest = [line for line in lines if line["protocol"] == "HTTP/1.1"]
    assert sorted(line["status"] for line in rest) == [403, 422, 422], rest  # link, params
