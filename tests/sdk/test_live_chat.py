"""The meeting's chat, live, with the stock SDK and a gRPC-Web client (scenarios/live.js):
the host, signed in with the SDK, reads the history and watches the dialog over gRPC-Web
through Envoy from the page's origin, while the attendee writes with the SDK in a runner of
its own; the watch gets each message as it is written. Refusals reach the client as gRPC
codes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Account, make_account
from tests.gateway.conftest import Gateway, create_meeting
from tests.sdk.conftest import PASSWORD, RUNTIMES, Run, Sdk, assert_answered, ok

WATCH_PATH = "/meetings.v1.ChatService/WatchDialog"
# Connect's codes (the gRPC ones).
CANCELED, INVALID_ARGUMENT, PERMISSION_DENIED, UNAUTHENTICATED = 1, 3, 7, 16
WATCHES = 4  # the scenario's own gRPC-Web calls: the live watch and three refused ones


@pytest.fixture
def attendee(db: Any) -> Account:
    return make_account("attendee", "attendee@example.com", PASSWORD)


@pytest.fixture
def stranger(db: Any) -> Account:
    return make_account("stranger", "stranger@example.com", PASSWORD)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_host_watches_the_attendee_write_over_grpc_web(
    sdk: Sdk,
    gateway: Gateway,
    host: Account,
    attendee: Account,
    stranger: Account,
    runtime: str,
) -> None:
    meeting = create_meeting(gateway, host.token, chat=True, attendees=[{"id": attendee.user_id}])
    dialog = meeting["chat_dialog_id"]
    opening = {"chat_dialog_id": dialog, "message": "before the watch"}
    assert gateway.call("POST", "/chat/Message", token=host.token, json_body=opening).status == 200
    texts = ["live one", "live two"]
    attendee_runs: list[Run] = []

    def on_step(name: str, data: Any) -> Any:
        assert name == "watching"
        args = {"login": attendee.login, "password": PASSWORD, "dialogId": dialog, "texts": texts}
        attendee_runs.append(sdk.run(runtime, "chatAttendeeSends", args))
        return [ok(sent)["_id"] for sent in attendee_runs[0].result["sent"]]

    args = {
        "login": host.login,
        "password": PASSWORD,
        "dialogId": dialog,
        "expect": len(texts),
        "strangerToken": stranger.token,
    }
    run = sdk.run(runtime, "chatHostWatches", args, on_step)
    r = run.result
    assert run.steps == ["watching"]
    assert [m["message"] for m in ok(r["history"])["items"]] == ["before the watch"]

    # Both messages, in order, as the attendee's SDK saw them sent; nothing else.
    assert r["received"], r["events"]
    assert r["events"] == [
        {"id": sent_id, "message": text, "senderId": attendee.user_id, "dialogId": dialog}
        for sent_id, text in zip(r["sent"], texts, strict=True)
    ]
    assert r["ended"]["code"] == CANCELED  # the page closed it

    assert r["noToken"]["ended"]["code"] == UNAUTHENTICATED
    assert r["stranger"]["ended"] == {
        "code": PERMISSION_DENIED,
        "message": "You are not a member of this dialog",
    }
    assert r["unknownResume"]["ended"]["code"] == INVALID_ARGUMENT
    assert "after_message_id" in r["unknownResume"]["ended"]["message"]
    assert all(refusal["events"] == 0 for refusal in (r["noToken"], r["stranger"]))

    assert_answered(attendee_runs[0])
    assert_answered(run, own_fetches=WATCHES)
    watches = [q for q in run.requests if q["path"] == WATCH_PATH and q["method"] == "POST"]
    assert len(watches) == WATCHES
    for request in watches:
        headers = {k.lower(): v for k, v in request["headers"].items()}
        assert headers["content-type"] == "application/grpc-web+proto", headers
        assert headers["x-grpc-web"] == "1" and "cb-token" in headers
        assert request["status"] == 200  # gRPC-Web: the outcome is in grpc-status
    if runtime == "chromium":
        preflight = next(
            q for q in run.requests if q["method"] == "OPTIONS" and q["path"] == WATCH_PATH
        )
        asked = {k.lower(): v for k, v in preflight["headers"].items()}
        assert {"cb-token", "x-grpc-web"} <= set(asked["access-control-request-headers"].split(","))
