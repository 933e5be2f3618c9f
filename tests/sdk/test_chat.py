"""Phase 3: a meeting's chat dialog over REST with the stock JS SDK (CB.chat.dialog.*,
CB.chat.message.*) in Node and Chromium (scenarios/chat.js). Each user is an SDK session of
its own, one runner process per turn; the test passes each turn the ids the earlier ones made
and looks at the rows in between."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from tests.conftest import Account, make_account
from tests.gateway.conftest import Gateway, create_meeting
from tests.sdk.conftest import (
    PASSWORD,
    RUNTIMES,
    Run,
    Sdk,
    assert_answered,
    ok,
    refused,
    rows,
)  # fmt: skip

NOT_MEMBER = {"errors": {"base": ["You are not a member of this dialog"]}}
# What every dialog and message shows (the hosted API's keys; more may follow).
DIALOG_KEYS = {
    "_id", "type", "name", "user_id", "occupants_ids", "last_message", "last_message_user_id",
    "last_message_date_sent", "unread_messages_count",
}  # fmt: skip
MESSAGE_KEYS = {
    "_id", "chat_dialog_id", "message", "sender_id", "date_sent", "created_at", "updated_at",
    "read_ids", "delivered_ids", "attachments", "recipient_id",
}  # fmt: skip
GROUP = 2
RFC3339_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
UNKNOWN_ID = "0123456789abcdef01234567"  # an ObjectId no message has
# date_sent the test gives the attendee's two messages, 'second' before 'hi', and one between.
SECOND_SENT, HI_SENT, PIVOT = 1700000000, 1700000100, 1700000050
EMPTY_DIALOGS = {"total_entries": 0, "skip": 0, "limit": 100, "items": []}


@pytest.fixture
def attendee(db: Any) -> Account:
    return make_account("attendee", "attendee@example.com", PASSWORD)


@pytest.fixture
def stranger(db: Any) -> Account:
    return make_account("stranger", "stranger@example.com", PASSWORD)


def turn(sdk: Sdk, runtime: str, scenario: str, who: Account, **args: Any) -> dict[str, Any]:
    """One user's turn: a runner of its own that signs in as `who`; its result, once every
    request was answered and the sign-in worked."""
    run: Run = sdk.run(runtime, scenario, {"login": who.login, "password": PASSWORD} | args)
    assert_answered(run)
    assert ok(run.result["session"])["user_id"] == who.user_id
    return run.result


def assert_dialog(
    dialog: dict[str, Any], dialog_id: str, name: str, host_id: int, occupants: list[int]
) -> None:
    assert DIALOG_KEYS <= set(dialog), dialog
    assert (dialog["_id"], dialog["type"], dialog["name"], dialog["user_id"]) == (
        dialog_id, GROUP, name, host_id,
    ), dialog  # fmt: skip
    assert dialog["occupants_ids"] == sorted(occupants), dialog


def one_dialog(listed: dict[str, Any]) -> dict[str, Any]:
    """The one dialog of a list by _id."""
    assert listed | {"items": None} == {
        "total_entries": 1, "skip": 0, "limit": 100, "items": None,
    }, listed  # fmt: skip
    (dialog,) = listed["items"]
    result: dict[str, Any] = dialog
    return result


def assert_message(
    message: dict[str, Any], dialog_id: str, text: str, sender: int, since: float
) -> None:
    """A message as created (read and delivered by its sender only), sent after `since`."""
    assert MESSAGE_KEYS <= set(message), message
    assert (message["chat_dialog_id"], message["message"], message["sender_id"]) == (
        dialog_id, text, sender,
    ), message  # fmt: skip
    assert (message["read_ids"], message["delivered_ids"]) == ([sender], [sender]), message
    assert (message["attachments"], message["recipient_id"]) == ([], 0), message
    assert re.fullmatch(r"[0-9a-f]{24}", message["_id"]), message
    sent = message["date_sent"]
    assert isinstance(sent, int | float) and sent == int(sent), message  # unix seconds
    assert int(since) <= sent <= time.time() + 1, message
    assert RFC3339_MS.fullmatch(message["created_at"]), message
    assert RFC3339_MS.fullmatch(message["updated_at"]), message


def ids(page: dict[str, Any]) -> list[str]:
    return [m["_id"] for m in page["items"]]


def unread(dialog_id: str, n: int) -> dict[str, int]:
    return {"total": n, dialog_id: n}


def deleted(outcome: dict[str, Any]) -> dict[str, Any]:
    """The body of a message delete, which the SDK reads as text."""
    text = ok(outcome)
    assert isinstance(text, str), text
    body: dict[str, Any] = json.loads(text)
    return body


def deletion(done: list[str], missing: list[str], forbidden: list[str]) -> dict[str, Any]:
    return {
        "SuccessfullyDeleted": {"ids": done}, "NotFound": {"ids": missing},
        "WrongPermissions": {"ids": forbidden},
    }  # fmt: skip


def stored_messages(db: Any, dialog_id: str) -> list[tuple[Any, ...]]:
    """(id, sender, text, read_ids sorted) of a dialog's rows, oldest first."""
    found = rows(
        db, "SELECT id, sender_id, message, read_ids FROM chat_messages"
        " WHERE dialog_id = %s ORDER BY date_sent, id", dialog_id,
    )  # fmt: skip
    return [(i, s, m, sorted(r)) for i, s, m, r in found]


def occupants(db: Any, dialog_id: str) -> list[tuple[Any, ...]]:
    return rows(
        db, "SELECT user_id, joined FROM chat_dialog_occupants WHERE dialog_id = %s ORDER BY 1",
        dialog_id,
    )  # fmt: skip


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_host_and_attendee_talk_in_the_meetings_dialog(
    sdk: Sdk, db: Any, host: Account, attendee: Account, runtime: str
) -> None:
    started = time.time()
    both = [host.user_id, attendee.user_id]

    # The host: a meeting with chat, its dialog found by _id (no message yet).
    r = turn(sdk, runtime, "chatHostCreates", host, attendeeId=attendee.user_id)
    meeting = ok(r["created"])
    dialog_id = meeting["chat_dialog_id"]
    assert isinstance(dialog_id, str) and re.fullmatch(r"[0-9a-f]{24}", dialog_id), meeting
    listed = ok(r["dialog"])
    dialog = one_dialog(listed)
    assert_dialog(dialog, dialog_id, "Chat sync", host.user_id, both)
    assert (
        dialog["last_message"], dialog["last_message_user_id"],
        dialog["last_message_date_sent"], dialog["unread_messages_count"],
    ) == (None, None, None, 0), dialog  # fmt: skip
    assert ok(r["all"]) == listed
    assert rows(db, "SELECT d.id, d.name FROM chat_dialogs d JOIN meetings m"
                " ON m.id = d.meeting_id WHERE m.id = %s", meeting["_id"]) == [
        (dialog_id, "Chat sync"),
    ]  # fmt: skip
    assert occupants(db, dialog_id) == [(host.user_id, False), (attendee.user_id, False)]

    # The attendee: the same dialog; subscribing changes nothing; two messages; two refusals.
    r = turn(sdk, runtime, "chatAttendeeWrites", attendee, dialogId=dialog_id)
    assert ok(r["dialog"]) == listed
    assert ok(r["all"]) == listed
    assert ok(r["subscribed"]) == dialog
    assert ok(r["empty"]) == {"skip": 0, "limit": 100, "items": []}
    hi, second = ok(r["hi"]), ok(r["second"])
    assert_message(hi, dialog_id, "hi", attendee.user_id, started)
    assert_message(second, dialog_id, "second", attendee.user_id, started)
    assert refused(r["blank"]) == (422, {"errors": {"message": ["is required"]}})
    code, info = refused(r["custom"])
    assert code == 422 and set(info) == {"errors"} and set(info["errors"]) == {"country"}, info
    assert info["errors"]["country"] and all(isinstance(m, str) for m in info["errors"]["country"])
    assert ok(r["unread"]) == unread(dialog_id, 0)  # one's own messages are read
    mine = [attendee.user_id]
    assert rows(
        db, "SELECT id, sender_id, message, read_ids, delivered_ids, attachments"
        " FROM chat_messages WHERE dialog_id = %s ORDER BY id", dialog_id,
    ) == sorted([
        (hi["_id"], attendee.user_id, "hi", mine, mine, []),
        (second["_id"], attendee.user_id, "second", mine, mine, []),
    ])  # fmt: skip

    # 'second' before 'hi', whole minutes apart, so that order and date filters tell.
    moved = db.execute_sql(
        "UPDATE chat_messages SET date_sent = CASE id WHEN %s THEN %s ELSE %s END"
        " WHERE dialog_id = %s", (hi["_id"], HI_SENT, SECOND_SENT, dialog_id),
    )  # fmt: skip
    assert moved.rowcount == 2

    # The host: two unread, the history (which reads it), pages and filters, a deletion of the
    # attendee's message (the host may), a reply.
    r = turn(sdk, runtime, "chatHostReads", host, dialogId=dialog_id, pivot=PIVOT,
             secondId=second["_id"])  # fmt: skip
    assert ok(r["unreadBefore"]) == unread(dialog_id, 2)
    history = ok(r["history"])
    assert (history["skip"], history["limit"], ids(history)) == (
        0, 100, [second["_id"], hi["_id"]],
    ), history  # fmt: skip
    assert [(m["message"], m["date_sent"]) for m in history["items"]] == [
        ("second", SECOND_SENT), ("hi", HI_SENT),
    ]  # fmt: skip
    assert ok(r["unreadAfter"]) == unread(dialog_id, 0)
    default_order = ok(r["defaultOrder"])
    assert ids(default_order) == [second["_id"], hi["_id"]], default_order
    assert all(sorted(m["read_ids"]) == sorted(both) for m in default_order["items"])
    page = ok(r["page"])
    assert (page["skip"], page["limit"], ids(page)) == (1, 1, [hi["_id"]]), page
    assert ids(ok(r["older"])) == [second["_id"]], r["older"]
    assert ids(ok(r["newer"])) == [hi["_id"]], r["newer"]
    assert deleted(r["deleted"]) == deletion([second["_id"]], [], [])
    reply = ok(r["reply"])
    assert_message(reply, dialog_id, "hello", host.user_id, started)
    now = one_dialog(ok(r["dialog"]))
    assert_dialog(now, dialog_id, "Chat sync", host.user_id, both)
    assert (
        now["last_message"], now["last_message_user_id"], now["last_message_date_sent"],
        now["unread_messages_count"],
    ) == ("hello", host.user_id, reply["date_sent"], 0), now  # fmt: skip
    assert stored_messages(db, dialog_id) == [
        (hi["_id"], attendee.user_id, "hi", sorted(both)),
        (reply["_id"], host.user_id, "hello", [host.user_id]),
    ]

    # The attendee: one unread reply; a look that does not mark it; marked read; its own
    # message edited, not the host's; one deletion of the host's, its own and an unknown id.
    r = turn(sdk, runtime, "chatAttendeeReads", attendee, dialogId=dialog_id, hiId=hi["_id"],
             replyId=reply["_id"], unknownId=UNKNOWN_ID)  # fmt: skip
    assert ok(r["unread"]) == unread(dialog_id, 1)
    peek = ok(r["peek"])
    assert ids(peek) == [hi["_id"], reply["_id"]], peek
    assert peek["items"][1]["read_ids"] == [host.user_id], peek
    assert ok(r["unreadAfterPeek"]) == unread(dialog_id, 1)
    assert isinstance(ok(r["markRead"]), str), r["markRead"]  # update() reads text
    assert ok(r["unreadAfterRead"]) == unread(dialog_id, 0)
    assert isinstance(ok(r["edited"]), str), r["edited"]
    code, info = refused(r["editOthers"])
    assert code == 403 and set(info) == {"errors"}, info
    after_edit = ok(r["afterEdit"])
    assert [(m["_id"], m["message"]) for m in after_edit["items"]] == [
        (hi["_id"], "edited"), (reply["_id"], "hello"),
    ]  # fmt: skip
    assert sorted(after_edit["items"][1]["read_ids"]) == sorted(both), after_edit
    assert deleted(r["deleted"]) == deletion([hi["_id"]], [UNKNOWN_ID], [reply["_id"]])
    remaining = ok(r["remaining"])
    assert [(m["_id"], m["message"]) for m in remaining["items"]] == [(reply["_id"], "hello")]
    last = one_dialog(ok(r["dialog"]))
    assert (last["last_message"], last["last_message_user_id"], last["unread_messages_count"]) == (
        "hello", host.user_id, 0,
    ), last  # fmt: skip
    assert stored_messages(db, dialog_id) == [
        (reply["_id"], host.user_id, "hello", sorted(both)),
    ]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_stranger_can_neither_see_nor_write(
    sdk: Sdk, gateway: Gateway, db: Any, host: Account, stranger: Account, runtime: str
) -> None:
    meeting = create_meeting(gateway, host.token, chat=True, attendees=[{"id": 4242}])
    dialog_id = meeting["chat_dialog_id"]
    body = {"chat_dialog_id": dialog_id, "message": "private"}
    posted = gateway.call("POST", "/chat/Message", token=host.token, json_body=body)
    assert posted.status == 200, posted
    message_id = posted.json()["_id"]
    before = stored_messages(db, dialog_id), occupants(db, dialog_id)

    r = turn(sdk, runtime, "chatStranger", stranger, dialogId=dialog_id, messageId=message_id)
    assert ok(r["dialog"]) == EMPTY_DIALOGS
    assert ok(r["all"]) == EMPTY_DIALOGS
    assert refused(r["subscribe"]) == (403, NOT_MEMBER)  # not a public meeting
    assert refused(r["create"]) == (403, NOT_MEMBER)
    assert refused(r["history"]) == (403, NOT_MEMBER)
    code, info = refused(r["edit"])
    assert code == 403 and set(info) == {"errors"}, info
    assert deleted(r["deleted"]) == deletion([], [], [message_id])
    assert (stored_messages(db, dialog_id), occupants(db, dialog_id)) == before
    assert before[0] == [(message_id, host.user_id, "private", [host.user_id])]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_guest_subscribes_to_a_public_meetings_dialog(
    sdk: Sdk, gateway: Gateway, db: Any, host: Account, runtime: str
) -> None:
    public = create_meeting(gateway, host.token, name="Open house", public=True, chat=True)
    private = create_meeting(gateway, host.token, name="Private", chat=True)
    dialog_id, private_id = public["chat_dialog_id"], private["chat_dialog_id"]
    started = time.time()

    run = sdk.run(runtime, "chatGuest", {"fullName": "Grace Guest", "dialogId": dialog_id,
                                         "privateDialogId": private_id})  # fmt: skip
    r = run.result
    assert_answered(run)
    guest = ok(r["session"])["user_id"]
    assert rows(db, "SELECT id FROM users WHERE is_guest") == [(guest,)]

    # Not an occupant yet: sees nothing, may not write.
    assert ok(r["before"]) == EMPTY_DIALOGS
    assert refused(r["createBefore"]) == (403, NOT_MEMBER)
    # Subscribed: an occupant, who reads and writes.
    subscribed = ok(r["subscribed"])
    assert_dialog(subscribed, dialog_id, "Open house", host.user_id, [host.user_id, guest])
    assert ok(r["dialog"])["items"] == [subscribed]
    assert ok(r["all"]) == {"total_entries": 1, "skip": 0, "limit": 100, "items": [subscribed]}
    sent = ok(r["sent"])
    assert_message(sent, dialog_id, "hello from a guest", guest, started)
    assert ids(ok(r["history"])) == [sent["_id"]]
    # A non-public meeting's dialog stays closed.
    assert refused(r["privateSubscribe"]) == (403, NOT_MEMBER)
    assert refused(r["privateCreate"]) == (403, NOT_MEMBER)

    assert occupants(db, dialog_id) == [(host.user_id, False), (guest, True)]
    assert occupants(db, private_id) == [(host.user_id, False)]
    assert stored_messages(db, dialog_id) == [
        (sent["_id"], guest, "hello from a guest", [guest]),
    ]
    assert stored_messages(db, private_id) == []
