"""The meeting's chat through the real Envoy, in the hosted chat REST API's shapes: the dialog,
sending, history (marked read), unread counts, read marks, edits and deletions; only
occupants, and whoever joins a public meeting's dialog."""

from __future__ import annotations

from typing import Any

from server.domain import auth
from server.storage.models import ChatMessage
from tests.conftest import Account
from tests.gateway.conftest import Gateway, create_meeting

NOT_MEMBER = {"errors": {"base": ["You are not a member of this dialog"]}}


def _send(gateway: Gateway, token: str, dialog: str, text: str) -> Any:
    return gateway.call(
        "POST",
        "/chat/Message.json",
        token=token,
        json_body={"chat_dialog_id": dialog, "message": text},
    )


def test_occupants_chat_in_the_meetings_dialog(
    gateway: Gateway, accounts: dict[str, Account]
) -> None:
    host, attendee, stranger = accounts["host"], accounts["attendee"], accounts["stranger"]
    meeting = create_meeting(gateway, host.token, chat=True, attendees=[{"id": attendee.user_id}])
    dialog = meeting["chat_dialog_id"]
    listed = gateway.call("GET", f"/chat/Dialog.json?_id={dialog}", token=attendee.token).json()
    assert (listed["total_entries"], listed["skip"], listed["limit"]) == (1, 0, 100)
    item = listed["items"][0]
    assert (item["_id"], item["type"], item["name"], item["user_id"]) == (
        dialog, 2, "Weekly sync", host.user_id
    )  # fmt: skip
    assert item["occupants_ids"] == sorted([host.user_id, attendee.user_id])
    assert item["last_message"] is None and item["unread_messages_count"] == 0
    assert (
        gateway.call("GET", f"/chat/Dialog?_id={dialog}", token=stranger.token).json()[
            "total_entries"
        ]
        == 0
    )

    sent = _send(gateway, attendee.token, dialog, "hello from the attendee")
    assert sent.status == 200, sent.body
    message = sent.json()
    assert (message["sender_id"], message["read_ids"], message["recipient_id"]) == (
        attendee.user_id, [attendee.user_id], 0
    )  # fmt: skip
    assert isinstance(message["date_sent"], (int, float)) and message["attachments"] == []
    unread = gateway.call("GET", f"/chat/Message/unread?chat_dialog_ids={dialog}", token=host.token)
    assert unread.json() == {"total": 1, dialog: 1}
    # Reading the history marks it read (unless mark_as_read=0).
    peek = gateway.call(
        "GET", f"/chat/Message?chat_dialog_id={dialog}&mark_as_read=0", token=host.token
    )
    assert [m["message"] for m in peek.json()["items"]] == ["hello from the attendee"]
    assert gateway.call("GET", "/chat/Message/unread", token=host.token).json() == {"total": 1}
    history = gateway.call("GET", f"/chat/Message.json?chat_dialog_id={dialog}&sort_asc=date_sent",
                           token=host.token).json()  # fmt: skip
    assert history["items"][0]["read_ids"] == sorted([host.user_id, attendee.user_id])
    assert gateway.call("GET", "/chat/Message/unread", token=host.token).json() == {"total": 0}

    reply = _send(gateway, host.token, dialog, "welcome").json()
    assert (
        gateway.call("GET", f"/chat/Dialog?_id={dialog}", token=attendee.token).json()["items"][0][
            "last_message"
        ]
        == "welcome"
    )
    marked = gateway.call("PUT", f"/chat/Message/{reply['_id']}.json", token=attendee.token,
                          json_body={"chat_dialog_id": dialog, "read": 1})  # fmt: skip
    assert marked.status == 200
    assert gateway.call("GET", "/chat/Message/unread", token=attendee.token).json() == {"total": 0}
    edit = {"chat_dialog_id": dialog, "message": "hello, edited"}
    edited = gateway.call(
        "PUT", f"/chat/Message/{message['_id']}", token=attendee.token, json_body=edit
    )
    assert edited.status == 200
    assert ChatMessage.get_by_id(message["_id"]).message == "hello, edited"
    not_own = gateway.call("PUT", f"/chat/Message/{reply['_id']}", token=attendee.token,
                           json_body={"chat_dialog_id": dialog, "message": "hijacked"})  # fmt: skip
    assert not_own.status == 403

    deleted = gateway.call("DELETE", f"/chat/Message/{reply['_id']},{message['_id']},"
                           "0123456789abcdef01234567", token=attendee.token).json()  # fmt: skip
    assert deleted == {
        "SuccessfullyDeleted": {"ids": [message["_id"]]},
        "NotFound": {"ids": ["0123456789abcdef01234567"]},
        "WrongPermissions": {"ids": [reply["_id"]]},
    }
    by_host = gateway.call("DELETE", f"/chat/Message/{reply['_id']}", token=host.token).json()
    assert by_host["SuccessfullyDeleted"] == {"ids": [reply["_id"]]}
    assert ChatMessage.select().count() == 0


def test_the_refusals(gateway: Gateway, accounts: dict[str, Account]) -> None:
    host, stranger = accounts["host"], accounts["stranger"]
    dialog = create_meeting(gateway, host.token, chat=True)["chat_dialog_id"]
    for method, path, body in (
        ("POST", "/chat/Message", {"chat_dialog_id": dialog, "message": "hi"}),
        ("GET", f"/chat/Message?chat_dialog_id={dialog}", None),
        ("POST", f"/chat/Dialog/{dialog}/subscribe", None),
        ("POST", "/chat/Message", {"chat_dialog_id": "0123456789abcdef01234567", "message": "x"}),
    ):
        reply = gateway.call(method, path, token=stranger.token, json_body=body)
        assert (reply.status, reply.json()) == (403, NOT_MEMBER), path
    cases = [
        ({"chat_dialog_id": dialog, "message": " "}, {"message": ["is required"]}),
        ({"chat_dialog_id": dialog, "message": "x" * 10_001},
         {"message": ["must be at most 10000 characters"]}),
        ({"chat_dialog_id": dialog, "message": "a\u0000b"},
         {"message": ["must not contain NUL characters"]}),
        ({"chat_dialog_id": dialog, "message": "hi", "country": "USA"},
         {"country": ["is not a supported field"]}),
        ({"chat_dialog_id": dialog, "message": "hi", "recipient_id": 7},
         {"recipient_id": ["is for private chats; a meeting's dialog is a group chat"]}),
    ]  # fmt: skip
    for body, named in cases:
        reply = gateway.call("POST", "/chat/Message", token=host.token, json_body=body)
        assert (reply.status, reply.json()) == (422, {"errors": named}), body
    for path, field in (
        (f"/chat/Message?chat_dialog_id={dialog}&limit=101", "limit"),
        (f"/chat/Message?chat_dialog_id={dialog}&sort_desc=sender_id", "sort_desc"),
        (f"/chat/Message?chat_dialog_id={dialog}&date_sent[ctn]=1", "date_sent[ctn]"),
        ("/chat/Dialog?type=2", "type"),
    ):
        reply = gateway.call("GET", path, token=host.token)
        assert reply.status == 422 and field in reply.json()["errors"], (path, reply.body)
    assert ChatMessage.select().count() == 0


def test_anyone_may_join_a_public_meetings_dialog(
    gateway: Gateway, accounts: dict[str, Account]
) -> None:
    host = accounts["host"]
    meeting = create_meeting(gateway, host.token, chat=True, public=True)
    dialog = meeting["chat_dialog_id"]
    guest = auth.sign_in_guest("Visitor", 600)
    joined = gateway.call("POST", f"/chat/Dialog/{dialog}/subscribe.json", token=guest.token)
    assert joined.status == 200 and guest.user_id in joined.json()["occupants_ids"]
    assert _send(gateway, guest.token, dialog, "hi all").status == 200
    # A change of the meeting's attendees leaves whoever joined in.
    change = {"name": "Renamed", "attendees": [{"email": "x@example.com"}]}
    changed = gateway.call("PUT", f"/meetings/{meeting['_id']}", token=host.token, json_body=change)
    assert changed.status == 200
    after = gateway.call("GET", f"/chat/Dialog?_id={dialog}", token=guest.token).json()["items"][0]
    assert after["name"] == "Renamed" and guest.user_id in after["occupants_ids"]
