"""envoy.yaml loads, its rendering for other ports, and the Lua filter's copy of proto fields."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from meetings.v1 import chat_pb2, meetings_pb2, sessions_pb2, users_pb2
from server import settings, supervisor
from server.transport.rest_names import rest_key
from tests.gateway.conftest import ENVOY

REPO = settings.REPO
LUA = (REPO / "gateway" / "compat.lua").read_text()


def test_envoy_validates_envoy_yaml() -> None:
    result = subprocess.run(
        [str(ENVOY), "--mode", "validate", "-c", "envoy.yaml", "-l", "error"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


def test_the_descriptor_is_newer_than_every_proto() -> None:
    descriptor = REPO / "gateway" / "meetings.pb"
    protos = list((REPO / "protos").rglob("*.proto"))
    stale = [p.name for p in protos if p.stat().st_mtime > descriptor.stat().st_mtime]
    assert not stale, f"gateway/meetings.pb is older than {stale}: run `make gen`"


def test_render_replaces_only_the_named_values() -> None:
    template = (REPO / "envoy.yaml").read_text()
    rendered = supervisor.render_envoy_config(
        template,
        {
            "GATEWAY_PORT": 18080,
            "GRPC_PORT": 50999,
            "GATEWAY_HOST": "10.1.2.3",
            "GATEWAY_MAX_CONNECTIONS": 2500,
        },
    )
    assert "port_value: 18080 # GATEWAY_PORT" in rendered
    assert "max_active_downstream_connections: 2500 # GATEWAY_MAX_CONNECTIONS" in rendered
    assert "port_value: 50999 # GRPC_PORT" in rendered
    assert "address: 10.1.2.3 # GATEWAY_HOST" in rendered
    # Not named: left as written. The admin listener stays on loopback whatever is rendered.
    assert "port_value: 9901 # ENVOY_ADMIN_PORT" in rendered
    admin = rendered[rendered.index("admin:") : rendered.index("overload_manager:")]
    assert "address: 127.0.0.1 #" in admin
    assert len(rendered.splitlines()) == len(template.splitlines())
    placeholders = set(re.findall(r": \S+ # ([A-Z_]+)\b", template))
    assert placeholders == {
        "GATEWAY_HOST", "GATEWAY_PORT", "ENVOY_ADMIN_PORT", "GRPC_HOST", "GRPC_PORT",
        "GATEWAY_MAX_CONNECTIONS", "CORS_ALLOWED_ORIGINS", "GATEWAY_TLS", "GRPC_CLUSTER_TYPE",
        "TRACING", "OTLP_HOST", "OTLP_PORT", "OTLP_TLS",
    }  # fmt: skip


def test_tracing_renders_a_config_envoy_accepts(tmp_path: Path) -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT over https: Envoy's tracer, its collector on 443 with TLS
    (SNI the collector's name), the URL tag from compat.lua's metadata; Envoy validates it."""
    traced = settings.Settings(otlp_endpoint="https://otel.example.com", trace_sample_ratio=0.25)
    values = supervisor.tracing_values(traced)
    assert (values["OTLP_HOST"], values["OTLP_PORT"]) == ("otel.example.com", 443)
    assert '"sni":"otel.example.com"' in str(values["OTLP_TLS"])
    tracing = str(values["TRACING"])
    assert '"uri":"https://otel.example.com/v1/traces"' in tracing
    assert '"random_sampling":{"value":25.0}' in tracing
    assert '"tag":"http.url"' in tracing and " " not in tracing
    config = tmp_path / "envoy.yaml"
    template = (REPO / "envoy.yaml").read_text()
    config.write_text(supervisor.render_envoy_config(template, values))
    supervisor.validate_envoy_config(ENVOY, config)
    assert supervisor.tracing_values(settings.Settings()) == {}


def test_cors_origins_render_as_envoy_matchers() -> None:
    assert supervisor.cors_origins(("*",)) == '[{"safe_regex":{"regex":".*"}}]'
    assert supervisor.cors_origins(("https://a.example", "http://127.0.0.1:3000")) == (
        '[{"exact":"https://a.example"},{"exact":"http://127.0.0.1:3000"}]'
    )


def test_a_broken_config_fails_validation_with_envoys_reason(tmp_path: Path) -> None:
    broken = tmp_path / "envoy.yaml"
    broken.write_text(
        (REPO / "envoy.yaml").read_text().replace("gateway/meetings.pb", "gateway/missing.pb")
    )
    with pytest.raises(supervisor.StartupError) as raised:
        supervisor.validate_envoy_config(ENVOY, broken)
    message = str(raised.value)
    assert message.startswith(f"the Envoy configuration {broken} is not valid:")
    assert "missing.pb" in message

    with pytest.raises(supervisor.StartupError, match="no Envoy binary"):
        supervisor.validate_envoy_config(tmp_path / "no-envoy", REPO / "envoy.yaml")


def _lua_set(name: str) -> set[str]:
    match = re.search(rf"local {name} = {{([^}}]*)}}", LUA)
    assert match, name
    return set(re.findall(r"(\w+) = true", match.group(1)))


def test_the_lua_filter_knows_the_protos_fields() -> None:
    """compat.lua's field lists must follow MeetingInput and ListMeetingsRequest."""
    meeting_rules = {rest_key(f) for f in meetings_pb2.MeetingInput.DESCRIPTOR.fields}
    assert _lua_set("MEETING_FIELDS") == meeting_rules
    list_fields = {rest_key(f) for f in meetings_pb2.ListMeetingsRequest.DESCRIPTOR.fields}
    assert _lua_set("FILTER_FIELDS") | _lua_set("PLAIN_PARAMS") == list_fields
    operators = {f.name for f in meetings_pb2.NumberFilter.DESCRIPTOR.fields}
    assert operators == {f.name for f in meetings_pb2.TimeFilter.DESCRIPTOR.fields}
    assert _lua_set("OPERATORS") | {"in"} == operators


def _fields(message: Any) -> set[str]:
    return {rest_key(f) for f in message.DESCRIPTOR.fields}


def test_the_lua_filter_knows_the_account_routes_fields() -> None:
    """compat.lua's body keys and users/v2 filters must follow the session and user protos."""
    assert _lua_set("SESSION_KEYS") == _fields(sessions_pb2.CreateSessionRequest)
    assert _lua_set("SESSION_USER_KEYS") == _fields(sessions_pb2.SessionUser)
    assert _lua_set("LOGIN_KEYS") == _fields(sessions_pb2.LoginRequest)
    assert _lua_set("USER_INPUT_KEYS") == _fields(users_pb2.UserInput)
    block = LUA[LUA.index("local USER_LIST = {") :]
    filters = dict(re.findall(r"(\w+) = (ID|TEXT|DATE)_OPS", block[: block.index("plain =")]))
    plain = set(re.findall(r"(\w+) = true", block[block.index("plain =") : block.index("}\n")]))
    request = users_pb2.ListUsersRequest.DESCRIPTOR
    assert set(filters) | plain == _fields(users_pb2.ListUsersRequest)
    kinds: dict[str, Any] = {
        "ID": users_pb2.IdFilter,
        "TEXT": users_pb2.TextFilter,
        "DATE": users_pb2.DateFilter,
    }
    for name, kind in filters.items():
        assert request.fields_by_name[name].message_type == kinds[kind].DESCRIPTOR, name
    for kind, message in kinds.items():
        ops = re.search(rf"local {kind}_OPS = {{\s*ops = {{([^}}]*)}}", LUA)
        assert ops, kind
        assert set(re.findall(r"(\w+)\"?\]? = true", ops.group(1))) == _fields(message), kind


def _lua_table_keys(name: str) -> set[str]:
    """The keys of a (possibly nested) Lua table literal `local NAME = {...}` of compat.lua."""
    start = LUA.index(f"local {name} = {{")
    depth, end = 0, start
    for end in range(LUA.index("{", start), len(LUA)):
        depth += {"{": 1, "}": -1}.get(LUA[end], 0)
        if depth == 0:
            break
    body = LUA[start:end]
    return set(re.findall(r"(?:^|[{,\s])(\w+) = ", body)) - {
        name,
        "filters",
        "plain",
        "ops",
        "list",
    }


def test_the_lua_filter_knows_the_chat_routes_fields() -> None:
    assert _lua_set("MESSAGE_KEYS") == _fields(chat_pb2.CreateMessageRequest)
    assert _lua_set("MESSAGE_UPDATE_KEYS") == _fields(chat_pb2.UpdateMessagesRequest) - {"ids"}
    message_list = _lua_table_keys("MESSAGE_LIST") - {"gt", "lt", "gte", "lte", "DATE_OPS"}
    assert message_list == _fields(chat_pb2.ListMessagesRequest)
    dialog_list = _lua_table_keys("DIALOG_LIST") - {"eq"}
    assert dialog_list == _fields(chat_pb2.ListDialogsRequest)
    assert _lua_table_keys("UNREAD_LIST") == _fields(chat_pb2.CountUnreadRequest)
