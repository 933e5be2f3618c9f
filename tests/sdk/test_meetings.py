"""Phase 1: what an app on the stock JS SDK does with meetings works against us, unchanged, in
Node and in a browser page of another origin (scenarios/meetings.js)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Account
from tests.gateway.conftest import MEETING_KEYS, Gateway, create_meeting
from tests.sdk.conftest import (
    PASSWORD,
    REQUIRED,
    RUNTIMES,
    Sdk,
    assert_answered,
    ok,
    refused,
    rows,
)  # fmt: skip


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_host_schedules_changes_and_deletes_a_meeting(
    sdk: Sdk, db: Any, accounts: dict[str, Account], runtime: str
) -> None:
    host, attendee, mailee = accounts["host"], accounts["attendee"], accounts["mailee"]
    stored: dict[str, Any] = {}

    def look_at_rows(step: str, data: dict[str, Any]) -> None:
        # Mid-scenario, the rows the create made: the meeting, its attendees, its chat.
        meeting_id = data.get("id")  # absent if the create failed: the asserts below say why
        stored["meeting"] = rows(db, "SELECT host_id, name FROM meetings WHERE id = %s", meeting_id)
        stored["attendees"] = rows(
            db, "SELECT user_id, email FROM meeting_attendees WHERE meeting_id = %s"
            " ORDER BY position", meeting_id,
        )  # fmt: skip
        stored["occupants"] = rows(
            db, "SELECT o.user_id FROM chat_dialog_occupants o JOIN chat_dialogs d"
            " ON d.id = o.dialog_id WHERE d.meeting_id = %s ORDER BY 1", meeting_id,
        )  # fmt: skip

    run = sdk.run(
        runtime, "meetings",
        {"login": "host", "password": PASSWORD, "attendeeId": attendee.user_id,
         "attendeeEmail": mailee.email},
        on_step=look_at_rows,
    )  # fmt: skip
    r = run.result
    assert run.steps == ["created"]
    assert_answered(run)

    session = ok(r["session"])
    assert session["user_id"] == host.user_id and len(session["token"]) >= 32

    created = ok(r["created"])
    assert set(created) == MEETING_KEYS
    assert created | {"_id": "", "chat_dialog_id": "", "created_at": "", "updated_at": ""} == {
        "_id": "", "name": "Friday weekly sync", "start_date": 1893456000,
        "end_date": 1893459600, "attendees": [{"id": attendee.user_id}, {"email": mailee.email}],
        "public": False, "scheduled": True, "record": False, "chat_dialog_id": "",
        "created_at": "", "updated_at": "", "host_id": host.user_id, "notify": False,
        "notify_before": {"metric": "minutes", "value": 10},
        "timezone": {"offset": 120, "name": "Europe/Riga"},
    }  # fmt: skip
    assert isinstance(created["chat_dialog_id"], str) and created["chat_dialog_id"]
    assert stored["meeting"] == [(host.user_id, "Friday weekly sync")]
    assert stored["attendees"] == [(attendee.user_id, None), (None, mailee.email)]
    # The chat's occupants: the host and the attendees by user id (not the one by email).
    assert stored["occupants"] == [(host.user_id,), (attendee.user_id,)]

    # get({_id}) is one object, get({}) and filters a bare array.
    assert ok(r["one"]) == created
    assert ok(r["listed"]) == [created]
    assert ok(r["filtered"]) == [created]
    assert ok(r["filteredOut"]) == []

    updated = ok(r["updated"])
    assert updated == created | {
        "name": "Renamed sync", "record": True, "attendees": [{"id": attendee.user_id}],
        "updated_at": updated["updated_at"],
    }  # fmt: skip
    assert updated["updated_at"] > created["updated_at"]
    assert ok(r["recordings"]) == []

    # delete() reads the body as text; the meeting is gone, with its chat.
    assert ok(r["deleted"]) == "{}"
    assert refused(r["afterDelete"]) == (404, {"errors": ["The resource wasn't found"]})
    assert rows(db, "SELECT count(*) FROM meetings") == [(0,)]
    assert rows(db, "SELECT count(*) FROM chat_dialogs") == [(0,)]

    # Signed out: no token, and the old one, are both refused.
    assert ok(r["destroyed"]) is None
    assert refused(r["noSession"]) == (401, REQUIRED)
    assert refused(r["oldToken"]) == (401, REQUIRED)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_guest_joins_by_link(
    sdk: Sdk, gateway: Gateway, db: Any, host: Account, runtime: str
) -> None:
    public = create_meeting(gateway, host.token, public=True)
    create_meeting(gateway, host.token, name="Private")

    run = sdk.run(runtime, "guest", {"fullName": "Grace Guest", "meetingId": public["_id"]})
    r = run.result
    assert_answered(run)

    session = ok(r["session"])
    guests = rows(db, "SELECT id, full_name, is_guest, login FROM users WHERE is_guest")
    assert [(g[0], g[1], g[2]) for g in guests] == [(session["user_id"], "Grace Guest", True)]
    assert len(session["token"]) >= 32
    # The public meeting it was sent, and nothing else: a guest hosts and attends none.
    assert ok(r["meeting"]) == public
    assert ok(r["listed"]) == []
