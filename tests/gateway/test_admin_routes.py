"""The admin REST routes (CB-Administration-API-Key header) through the gateway."""

from __future__ import annotations

from typing import Any

from server.domain import service_keys
from tests.conftest import Account
from tests.gateway.conftest import MEETING_KEYS, Gateway, db_snapshot


def test_admin_routes(gateway: Gateway, accounts: dict[str, Account], db: Any) -> None:
    admin = {"CB-Administration-API-Key": service_keys.issue(service_keys.ADMIN)}
    host = accounts["host"]
    body = {"name": "Ops call", "start_date": 100, "end_date": 200, "user_id": host.user_id}

    created = gateway.call("POST", "/admin/meetings.json", json_body=body, headers=admin)
    assert created.status == 200
    meeting = created.json()
    assert set(meeting) == MEETING_KEYS and meeting["host_id"] == host.user_id
    # The host sees it as theirs.
    mine = gateway.call("GET", f"/meetings?_id={meeting['_id']}", token=host.token)
    assert mine.json() == meeting

    recordings = gateway.call("GET", f"/admin/meetings/recordings/{meeting['_id']}", headers=admin)
    assert (recordings.status, recordings.json()) == (200, [])
    deleted = gateway.call(
        "DELETE", f"/admin/meetings/recordings/{meeting['_id']}.json", headers=admin
    )
    assert (deleted.status, deleted.json()) == (200, {})
    settings = gateway.call("GET", "/admin/settings/meetings", headers=admin)
    assert settings.status == 200 and "meeting_url_template" in settings.json()

    before = db_snapshot(db)
    unknown = gateway.call("POST", "/admin/meetings", json_body=body | {"owner": 1}, headers=admin)
    assert (unknown.status, unknown.json()) == (
        422,
        {"errors": {"owner": ["is not a meeting field"]}},
    )
    param = gateway.call("GET", "/admin/settings/meetings?all=1", headers=admin)
    assert (param.status, param.json()) == (
        422,
        {"errors": {"all": ["is not a supported parameter"]}},
    )
    no_key = gateway.call("POST", "/admin/meetings", json_body=body)
    assert no_key.status == 401 and list(no_key.json()["errors"]) == ["base"]
    user_token = gateway.call("GET", "/admin/settings/meetings", token=host.token)
    assert user_token.status == 401
    assert db_snapshot(db) == before
