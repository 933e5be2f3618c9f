"""Small pure pieces: ids, clock formatting, settings, list filter validation."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from server.domain import clock, errors, ids, meeting_filters, meeting_values
from server.domain.meeting_values import Condition
from server.settings import GatewaySettings, Settings, SettingsError


def test_ids_are_24_lowercase_hex_and_unique() -> None:
    made = [ids.new_id() for _ in range(10_000)]
    assert all(ids.is_valid(i) for i in made)
    assert len(set(made)) == len(made)
    assert not ids.is_valid("602F926AAA81493CE4C5788E")
    assert not ids.is_valid("602f926aaa81493ce4c5788")


def test_iso_ms_always_prints_milliseconds() -> None:
    assert (
        clock.iso_ms(datetime(2021, 2, 19, 10, 26, 50, 13_000, UTC)) == "2021-02-19T10:26:50.013Z"
    )
    assert clock.iso_ms(datetime(2021, 2, 19, 10, 26, 50, tzinfo=UTC)) == "2021-02-19T10:26:50.000Z"
    assert clock.now().microsecond % 1000 == 0


def test_settings_defaults_and_environment() -> None:
    assert Settings.from_env({}) == Settings()
    s = Settings.from_env(
        {
            "GRPC_PORT": "6000",
            "DATABASE_URL": "postgresql://x/y",
            "TOKEN_TTL_SECONDS": "60",
            "DATA_DIR": "/tmp/d",
            "LOG_LEVEL": "debug",
        }
    )
    assert (s.grpc_port, s.database_url, s.token_ttl_seconds, s.data_dir, s.log_level) == (
        6000,
        "postgresql://x/y",
        60,
        Path("/tmp/d"),
        "DEBUG",
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GRPC_PORT": "http"}, "GRPC_PORT must be a whole number"),
        ({"GRPC_PORT": "70000"}, "GRPC_PORT must be between 0 and 65535"),
        ({"TOKEN_TTL_SECONDS": "0"}, "TOKEN_TTL_SECONDS must be between"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL must be"),
        ({"DATABASE_LISTEN_URL": "postgresql://db/m"}, "DATABASE_LISTEN_URL needs DATABASE_URL"),
    ],
)
def test_settings_fail_loudly_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_gateway_connection_cap_is_a_setting() -> None:
    assert GatewaySettings.from_env({}).gateway_max_connections == 10_000
    cap = GatewaySettings.from_env({"GATEWAY_MAX_CONNECTIONS": "50000"})
    assert cap.gateway_max_connections == 50_000
    with pytest.raises(SettingsError, match="GATEWAY_MAX_CONNECTIONS must be between"):
        GatewaySettings.from_env({"GATEWAY_MAX_CONNECTIONS": "0"})


def test_cors_origins_setting() -> None:
    assert GatewaySettings.from_env({}).cors_allowed_origins == ("*",)
    listed = GatewaySettings.from_env({"CORS_ALLOWED_ORIGINS": "https://a.example, http://[::1]:8"})
    assert listed.cors_allowed_origins == ("https://a.example", "http://[::1]:8")
    for wrong in ("a.example", "https://a.example/path", "*, https://a.example", "ftp://a"):
        with pytest.raises(SettingsError, match=r"CORS_ALLOWED_ORIGINS: .* is not an origin"):
            GatewaySettings.from_env({"CORS_ALLOWED_ORIGINS": wrong})


def test_list_query_defaults_and_limit_cap() -> None:
    assert meeting_filters.build([], None, 0).limit == 100
    assert meeting_filters.build([], 500, 0).limit == 100
    assert meeting_filters.build([], 5, 10) == meeting_values.ListQuery((), 5, 10)


def test_list_query_rejects_bad_values_naming_the_parameter() -> None:
    with pytest.raises(errors.InvalidFields) as caught:
        meeting_filters.build(
            [
                Condition("start_date", "gte", 1613729948000.0),
                Condition("end_date", "in", (1.0, 2.5)),
                Condition("start_date", "eq", -3.0),
            ],
            0,
            0,
        )
    assert caught.value.fields == {
        "start_date[gte]": ["is beyond year 9999: send unix time in seconds, not milliseconds"],
        "end_date[in]": ["must be whole seconds"],
        "start_date": ["must not be negative"],
        "limit": ["must be from 1 to 100"],
    }


def test_list_query_in_lists_are_bounded() -> None:
    with pytest.raises(errors.InvalidFields) as caught:
        meeting_filters.build(
            [Condition("start_date", "in", tuple(float(i) for i in range(101)))], None, 0
        )
    assert caught.value.fields == {"start_date[in]": ["must list at most 100 values"]}
