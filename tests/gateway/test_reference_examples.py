"""The reference's curl examples (create, list with filters, update, delete) through Envoy."""

from __future__ import annotations

import re
from typing import Any

from tests.conftest import Account
from tests.gateway.conftest import MEETING_KEYS, Gateway, create_meeting, db_snapshot

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")

# The reference's create body. Its saved copy lost the e-mail addresses ("email": ""); an
# attendee given by email alone needs a real one.
CREATE_BODY = (
    '{"name": "Friday weekly sync", "start_date": 1613729948, "end_date": 1613731012, '
    '"attendees": [{"id": 245,"email": ""}, {"id": 343}, {"email": "guest@example.com"}], '
    '"record": false, "chat": true, "notify": true, '
    '"notify_before": {"metric": "minutes", "value": 10}, '
    '"timezone": {"offset": 120, "name": "Europe/Riga"} }'
)
# The reference's update body, exactly as printed: a comma is missing after "id": 3456.
UPDATE_BODY_AS_PRINTED = (
    '{"name": "Another meeting name", "start_date": 1613959948, "end_date": 1613956048, '
    '"attendees": [{"id": 1445,"email": ""}, {"id": 3456 "email": ""}], "record":true, '
    '"chat":true, "public": true, "scheduled": true, '
    '"notify_before": { "metric": "hours", "value": 1 }, '
    '"timezone": { "offset": -300, "name": "America/New_York" } }'
)
JSON = {"Content-Type": "application/json"}


def assert_meeting_shape(meeting: dict[str, Any]) -> None:
    assert set(meeting) == MEETING_KEYS
    assert OBJECT_ID.match(meeting["_id"])
    for key in ("start_date", "end_date", "host_id"):
        assert type(meeting[key]) is int, key
    for key in ("record", "public", "scheduled", "notify"):
        assert type(meeting[key]) is bool, key
    assert isinstance(meeting["attendees"], list)
    assert ISO_MS.match(meeting["created_at"]) and ISO_MS.match(meeting["updated_at"])


def test_create_example(gateway: Gateway, accounts: dict[str, Account], db: Any) -> None:
    host = accounts["host"]
    reply = gateway.call("POST", "/meetings", token=host.token, body=CREATE_BODY, headers=JSON)

    assert reply.status == 200
    meeting = reply.json()
    assert_meeting_shape(meeting)
    assert meeting | {"_id": "", "chat_dialog_id": "", "created_at": "", "updated_at": ""} == {
        "_id": "",
        "name": "Friday weekly sync",
        "start_date": 1613729948,
        "end_date": 1613731012,
        "attendees": [{"id": 245, "email": ""}, {"id": 343}, {"email": "guest@example.com"}],
        "record": False,
        "chat_dialog_id": "",
        "created_at": "",
        "updated_at": "",
        "host_id": host.user_id,
        "public": False,
        "scheduled": False,
        "notify": True,
        "notify_before": {"metric": "minutes", "value": 10},
        "timezone": {"offset": 120, "name": "Europe/Riga"},
    }
    assert OBJECT_ID.match(meeting["chat_dialog_id"])
    assert meeting["created_at"] == meeting["updated_at"]
    assert (reply.header("cb-token-expirationdate") or "").endswith(" UTC")
    stored = db.execute_sql("SELECT name FROM meetings").fetchall()
    assert stored == [("Friday weekly sync",)]


def test_list_example_with_a_form_body_on_get(
    gateway: Gateway, accounts: dict[str, Account]
) -> None:
    host = accounts["host"]
    wanted = create_meeting(gateway, host.token, scheduled=True, start_date=1613729948)
    create_meeting(gateway, host.token, scheduled=False, start_date=1613729948)
    create_meeting(gateway, host.token, scheduled=True, start_date=1613729947)

    # curl -X GET -H "CB-Token: <TOKEN>" -d 'start_date[gte]=...&scheduled=true&created_at[gt]=...'
    reply = gateway.call(
        "GET",
        "/meetings",
        token=host.token,
        body="start_date[gte]=1613729948&scheduled=true&created_at[gt]=2021-02-19T10:26:49.013Z",
    )

    assert reply.status == 200
    listed = reply.json()
    assert [m["_id"] for m in listed] == [wanted["_id"]]
    assert_meeting_shape(listed[0])
    # A meeting created without chat, notify_before or timezone prints them as null, and its
    # booleans as false (never null).
    assert listed[0]["chat_dialog_id"] is None
    assert listed[0]["notify_before"] is None and listed[0]["timezone"] is None
    assert listed[0]["record"] is False and listed[0]["notify"] is False


def test_update_example(gateway: Gateway, accounts: dict[str, Account], db: Any) -> None:
    host = accounts["host"]
    created = gateway.call("POST", "/meetings", token=host.token, body=CREATE_BODY, headers=JSON)
    meeting = created.json()
    path = f"/meetings/{meeting['_id']}"
    before = db_snapshot(db)

    # As printed, the body is not JSON: 400, and nothing changes.
    reply = gateway.call("PUT", path, token=host.token, body=UPDATE_BODY_AS_PRINTED, headers=JSON)
    assert reply.status == 400
    [message] = reply.json()["errors"]
    assert "Expected , or }" in message
    assert db_snapshot(db) == before

    # With the comma, its end_date is before its start_date, which we reject (api-contract.md).
    with_comma = UPDATE_BODY_AS_PRINTED.replace('3456 "email"', '3456, "email"')
    reply = gateway.call("PUT", path, token=host.token, body=with_comma, headers=JSON)
    assert (reply.status, reply.json()) == (
        422,
        {"errors": {"end_date": ["must not be before start_date"]}},
    )
    assert db_snapshot(db) == before

    fixed = with_comma.replace('"end_date": 1613956048', '"end_date": 1613963548')
    reply = gateway.call("PUT", path, token=host.token, body=fixed, headers=JSON)
    assert reply.status == 200
    updated = reply.json()
    assert_meeting_shape(updated)
    assert {key: updated[key] for key in MEETING_KEYS - {"updated_at", "chat_dialog_id"}} == {
        "_id": meeting["_id"],
        "name": "Another meeting name",
        "start_date": 1613959948,
        "end_date": 1613963548,
        "attendees": [{"id": 1445, "email": ""}, {"id": 3456, "email": ""}],
        "record": True,
        "created_at": meeting["created_at"],
        "host_id": host.user_id,
        "public": True,
        "scheduled": True,
        "notify": True,
        "notify_before": {"metric": "hours", "value": 1},
        "timezone": {"offset": -300, "name": "America/New_York"},
    }
    assert updated["updated_at"] > meeting["updated_at"]
    fetched = gateway.call("GET", f"/meetings?_id={meeting['_id']}", token=host.token).json()
    assert fetched == updated


def test_delete_example(gateway: Gateway, accounts: dict[str, Account], db: Any) -> None:
    host = accounts["host"]
    meeting = create_meeting(gateway, host.token)

    reply = gateway.call("DELETE", f"/meetings/{meeting['_id']}", token=host.token)

    assert (reply.status, reply.json()) == (200, {})
    assert db.execute_sql("SELECT count(*) FROM meetings").fetchone() == (0,)
    again = gateway.call("GET", f"/meetings?_id={meeting['_id']}", token=host.token)
    assert (again.status, again.json()) == (404, {"errors": ["The resource wasn't found"]})
