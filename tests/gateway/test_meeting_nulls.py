"""A meeting's typed optional fields (chat_dialog_id, notify_before, timezone) print over REST
exactly as the hosted API prints them: null in their place when the meeting has none, byte
for byte, in every reply that holds meetings (created, fetched, listed, paged, updated, and
the admin's). gRPC clients see them empty or unset instead."""

from __future__ import annotations

from typing import Any

import pytest

from meetings.v1 import meetings_pb2 as pb
from tests.conftest import Account, admin_metadata
from tests.gateway.conftest import Gateway, create_meeting

NOTIFY = {"metric": "hours", "value": 1}
ZONE = {"offset": 120, "name": "Europe/Riga"}


def expected(meeting: dict[str, Any], host: int, tail: str, dialog: str = "null") -> bytes:
    """The hosted API's bytes: keys in this order, no spaces."""
    return (
        f'{{"_id":"{meeting["_id"]}","name":"Weekly sync","start_date":1613729948,'
        f'"end_date":1613731012,"attendees":[],"public":false,"scheduled":false,'
        f'"record":false,"chat_dialog_id":{dialog},"created_at":"{meeting["created_at"]}",'
        f'"updated_at":"{meeting["updated_at"]}","host_id":{host},"notify":false,{tail}}}'
    ).encode()


CASES = {
    "none": ({}, '"notify_before":null,"timezone":null'),
    "notify_before": (
        {"notify_before": NOTIFY},
        '"notify_before":{"metric":"hours","value":1},"timezone":null',
    ),
    "timezone": (
        {"timezone": ZONE},
        '"notify_before":null,"timezone":{"offset":120,"name":"Europe/Riga"}',
    ),
    "both": (
        {"notify_before": NOTIFY, "timezone": ZONE},
        '"notify_before":{"metric":"hours","value":1},'
        '"timezone":{"offset":120,"name":"Europe/Riga"}',
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_every_reply_with_a_meeting_prints_its_nulls_in_place(
    gateway: Gateway, accounts: dict[str, Account], case: str
) -> None:
    host = accounts["host"]
    fields, tail = CASES[case]
    created = gateway.call(
        "POST",
        "/meetings",
        token=host.token,
        json_body={"name": "Weekly sync", "start_date": 1613729948, "end_date": 1613731012}
        | fields,
    )
    meeting = created.json()
    assert created.body == expected(meeting, host.user_id, tail)
    one = gateway.call("GET", f"/meetings/{meeting['_id']}", token=host.token)
    assert one.body == created.body
    assert gateway.call("GET", f"/meetings?_id={meeting['_id']}", token=host.token).body == one.body
    listed = gateway.call("GET", "/meetings", token=host.token)
    assert listed.body == b"[" + one.body + b"]"
    paged = gateway.call("GET", "/meetings", token=host.token, headers={"CB-Api-Version": "2"})
    assert paged.body == b'{"limit":100,"skip":0,"total_entries":1,"items":[' + one.body + b"]}"
    updated = gateway.call(
        "PUT", f"/meetings/{meeting['_id']}", token=host.token, json_body={"record": False}
    )
    assert updated.body == expected(updated.json(), host.user_id, tail)


def test_a_meeting_with_a_dialog_prints_its_id_and_grpc_sees_typed_fields(
    gateway: Gateway, accounts: dict[str, Account], meeting_stub: Any
) -> None:
    host = accounts["host"]
    meeting = create_meeting(gateway, host.token, chat=True, notify_before=NOTIFY)
    dialog = meeting["chat_dialog_id"]
    assert isinstance(dialog, str) and len(dialog) == 24
    tail = '"notify_before":{"metric":"hours","value":1},"timezone":null'
    fetched = gateway.call("GET", f"/meetings/{meeting['_id']}", token=host.token)
    assert fetched.body == expected(meeting, host.user_id, tail, dialog=f'"{dialog}"')

    typed = meeting_stub.GetMeeting(pb.GetMeetingRequest(id=meeting["_id"]), metadata=host.metadata)
    assert (typed.id, typed.chat_dialog_id) == (meeting["_id"], dialog)
    assert (typed.notify_before.metric, typed.notify_before.value) == ("hours", 1)
    assert not typed.HasField("timezone")
    bare = meeting_stub.GetMeeting(
        pb.GetMeetingRequest(id=create_meeting(gateway, host.token)["_id"]),
        metadata=host.metadata,
    )
    assert bare.chat_dialog_id == "" and not bare.HasField("notify_before")


def test_the_admin_detail_prints_the_nulls_of_its_meeting(
    gateway: Gateway, accounts: dict[str, Account], admin_key: str
) -> None:
    meeting = create_meeting(gateway, accounts["host"].token)
    headers = dict(admin_metadata(admin_key))
    detail = gateway.call("GET", f"/admin/meetings/{meeting['_id']}", headers=headers)
    assert detail.status == 200, detail
    assert b'"notify":false,"notify_before":null,"timezone":null}' in detail.body
    assert b'"chat_dialog_id":null' in detail.body


def test_text_that_looks_like_the_keys_is_left_alone(
    gateway: Gateway, accounts: dict[str, Account]
) -> None:
    name = 'a","notify":false},"chat_dialog_id":"","notify_before":{"x":1}}'
    meeting = create_meeting(gateway, accounts["host"].token, name=name, timezone=ZONE)
    fetched = gateway.call("GET", f"/meetings/{meeting['_id']}", token=accounts["host"].token)
    assert fetched.json()["name"] == name
    assert (fetched.json()["notify_before"], fetched.json()["timezone"]) == (None, ZONE)
