"""Requests as the JS and Dart SDKs send them, and every request form of gateway/compat.lua."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from server.domain import applications, auth
from tests.conftest import Account
from tests.gateway.conftest import Gateway, create_meeting

JSON = {"Content-Type": "application/json"}


def ids(reply_json: list[dict[str, Any]]) -> list[str]:
    return [m["_id"] for m in reply_json]


def test_js_sdk_style_requests(gateway: Gateway, accounts: dict[str, Account]) -> None:
    """.json suffixes, sorted keys with percent-encoded brackets in a form body on GET."""
    token = accounts["host"].token
    created = gateway.call(
        "POST", "/meetings.json", token=token,
        json_body={"name": "JS", "start_date": 2000, "end_date": 3000, "attendees": []},
    )  # fmt: skip
    assert created.status == 200
    meeting = created.json()
    assert meeting["attendees"] == []
    create_meeting(gateway, token, start_date=1000, end_date=3000)

    listed = gateway.call(
        "GET", "/meetings.json", token=token,
        body="created_at%5Bgt%5D=2021-02-19T10%3A26%3A49.013Z&scheduled=false"
        "&start_date%5Bgte%5D=2000",
    )  # fmt: skip
    assert (listed.status, ids(listed.json())) == (200, [meeting["_id"]])

    one = gateway.call("GET", "/meetings.json", token=token, body=f"_id={meeting['_id']}")
    assert one.json() == meeting  # a single object, not a list

    updated = gateway.call(
        "PUT", f"/meetings/{meeting['_id']}.json", token=token, json_body={"record": True}
    )
    assert updated.json() == meeting | {"record": True, "updated_at": updated.json()["updated_at"]}
    deleted = gateway.call("DELETE", f"/meetings/{meeting['_id']}.json", token=token)
    assert (deleted.status, deleted.json()) == (200, {})


def test_partial_updates_send_only_the_keys_given(
    gateway: Gateway, accounts: dict[str, Account]
) -> None:
    token = accounts["host"].token
    meeting = create_meeting(
        gateway, token, attendees=[{"id": 7}], notify_before={"metric": "days", "value": 2}
    )
    path = f"/meetings/{meeting['_id']}"

    recording = gateway.call("PUT", path, token=token, json_body={"record": True}).json()
    assert recording["record"] is True
    assert recording["attendees"] == [{"id": 7}] and recording["name"] == meeting["name"]

    stopped = gateway.call("PUT", path, token=token, json_body={"record": False}).json()
    assert stopped["record"] is False

    cleared = gateway.call("PUT", path, token=token, json_body={"attendees": []}).json()
    assert cleared["attendees"] == [] and cleared["notify_before"] == meeting["notify_before"]

    # camelCase keys (accepted by the transcoder) name the same fields; null clears an object.
    renamed = gateway.call(
        "PUT", path, token=token, json_body={"notifyBefore": None, "startDate": 1500}
    ).json()
    assert renamed["notify_before"] is None and renamed["start_date"] == 1500

    # A client's own update_mask wins over the body's keys.
    masked = gateway.call(
        "PUT", f"{path}?update_mask=name", token=token, json_body={"name": "New", "record": True}
    ).json()
    assert masked["name"] == "New" and masked["record"] is False

    # A fetched meeting echoed back whole (read-only keys included) changes nothing else.
    echoed = gateway.call("PUT", path, token=token, json_body=masked | {"name": "Echo"}).json()
    assert echoed == masked | {"name": "Echo", "updated_at": echoed["updated_at"]}

    # An empty object, or no body at all, is a valid update that changes nothing.
    same = gateway.call("PUT", path, token=token, json_body={}).json()
    assert same == echoed | {"updated_at": same["updated_at"]}
    empty = gateway.call("PUT", path, token=token).json()
    assert empty == echoed | {"updated_at": empty["updated_at"]}

    # Escaped quotes inside a string do not end it for the key scanner.
    quoted = gateway.call(
        "PUT", path, token=token, body='{"name": "a \\"quoted\\" {name}"}', headers=JSON
    ).json()
    assert quoted["name"] == 'a "quoted" {name}' and quoted["record"] is False


def _signed(app: applications.Credentials, user: dict[str, str]) -> dict[str, Any]:
    """A session request as older SDKs (and the Flutter SDK) sign it: HMAC-SHA1 with the auth
    secret over the sorted flat parameters, strings throughout."""
    fields = {"application_id": str(app.id), "auth_key": app.auth_key, "nonce": "5",
              "timestamp": str(int(time.time()))}  # fmt: skip
    fields |= {f"user[{k}]": v for k, v in user.items()}
    message = "&".join(f"{k}={fields[k]}" for k in sorted(fields))
    signature = hmac.new(app.auth_secret.encode(), message.encode(), hashlib.sha1).hexdigest()
    flat = {k: v for k, v in fields.items() if not k.startswith("user[")}
    return flat | {"signature": signature} | ({"user": user} if user else {})


def test_session_routes(gateway: Gateway, db: Any) -> None:
    auth.create_user("sam", "correct horse battery", "sam@example.com", "Sam")
    app = applications.current()
    created = gateway.call(
        "POST", "/session.json",
        json_body=_signed(app, {"login": "sam", "password": "correct horse battery"}),
    )  # fmt: skip
    assert created.status == 200
    session = created.json()["session"]
    assert set(session) == {
        "_id", "token", "user_id", "created_at", "updated_at", "application_id", "ts", "user",
    }  # fmt: skip
    assert session["application_id"] == app.id and session["user"]["login"] == "sam"
    tampered = _signed(app, {"login": "sam", "password": "correct horse battery"})
    tampered["nonce"] = "6"
    refused = gateway.call("POST", "/session.json", json_body=tampered)
    assert (refused.status, refused.json()) == (422, {"errors": {"base": ["Unexpected signature"]}})
    token = session["token"]

    current = gateway.call("GET", "/session", token=token).json()["session"]
    assert current["user_id"] == session["user_id"]
    assert gateway.call("DELETE", "/session", token=token).json() == {}
    after = gateway.call("GET", "/meetings", token=token)
    assert (after.status, after.json()) == (
        401,
        {"errors": {"base": ["Required session does not exist"]}},
    )

    guest = gateway.call(
        "POST", "/session", json_body={"user": {"guest": "1", "full_name": "Visitor"}}
    )
    assert guest.status == 200 and guest.json()["session"]["token"]

    wrong = gateway.call(
        "POST", "/session", json_body={"user": {"login": "sam", "password": "nope nope"}}
    )
    assert wrong.status == 401


def _preflight(gateway: Gateway, path: str, method: str, headers: str) -> Any:
    return gateway.call(
        "OPTIONS", path,
        headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": method,
                 "Access-Control-Request-Headers": headers},
    )  # fmt: skip


def test_cors_preflight_for_browser_apps(gateway: Gateway) -> None:
    # What the JS SDK sends (CB-SDK on every call, CB-AuthKey on sign-up) and the Flutter SDK.
    sdk_headers = "cb-sdk, cb-token, cb-authkey, content-type, cb-api-version"
    reply = _preflight(gateway, "/meetings.json", "PUT", sdk_headers)
    assert reply.status == 200
    assert reply.header("access-control-allow-origin") == "https://app.example.com"
    assert "PUT" in (reply.header("access-control-allow-methods") or "")
    allowed = {h.strip() for h in (reply.header("access-control-allow-headers") or "").split(",")}
    assert set(sdk_headers.split(", ")) | {"connectycube-rest-api-version"} <= allowed
    assert reply.header("access-control-max-age") == "86400"
    assert reply.header("access-control-allow-credentials") is None
    # The admin key is not among them: no page on another origin can call the admin API.
    admin = _preflight(gateway, "/admin/meetings", "GET", "cb-administration-api-key")
    assert "cb-administration-api-key" not in (admin.header("access-control-allow-headers") or "")
    listed = gateway.call("GET", "/meetings.json", headers={"Origin": "https://app.example.com"})
    assert listed.status == 401
    assert listed.header("access-control-allow-origin") == "https://app.example.com"
    assert "cb-token-expirationdate" in (listed.header("access-control-expose-headers") or "")


def test_flutter_sdk_shaped_flow(gateway: Gateway, db: Any) -> None:
    """As connectycube_sdk (Dart) sends them: its two headers on every call, a signed
    application session, sign-up, then POST /login with the flat keys of its SignInQuery, and
    GET parameters it writes unsorted with Uri.encodeComponent."""
    app = applications.current()
    flutter = {"ConnectyCube-REST-API-Version": "0.1.1", "CB-SDK": "Flutter 2.13.0"}
    session = gateway.call("POST", "/session.json", headers=flutter, json_body=_signed(app, {}))
    assert session.status == 200, session.body
    token = session.json()["session"]["token"]
    assert session.json()["session"]["user_id"] == 0
    signed_up = gateway.call(
        "POST", "/users.json", token=token, headers=flutter,
        json_body={"user": {"login": "flo", "password": "correct horse battery",
                            "full_name": "Flo Rida", "email": "flo@example.com"}},
    )  # fmt: skip
    assert signed_up.status == 200, signed_up.body
    user_id = signed_up.json()["user"]["id"]
    flat = {"login": "flo", "password": "correct horse battery"}
    logged = gateway.call("POST", "/login.json", token=token, headers=flutter, json_body=flat)
    assert logged.json()["user"]["id"] == user_id
    # The Flutter SDK reads this to renew its session in time.
    assert (logged.header("cb-token-expirationdate") or "").endswith(" UTC")
    found = gateway.call("GET", f"/users/v2.json?login=flo&limit=10&id={user_id}", token=token,
                         headers=flutter).json()  # fmt: skip
    assert [u["id"] for u in found["items"]] == [user_id]
    meeting = gateway.call("POST", "/meetings.json", token=token, headers=flutter, json_body={
        "name": "Flutter sync", "start_date": 1613729948, "end_date": 1613731012})  # fmt: skip
    assert meeting.status == 200 and meeting.json()["host_id"] == user_id
    logged_out = gateway.call("DELETE", "/login.json", token=token, headers=flutter)
    assert logged_out.status == 200
    after = gateway.call("GET", "/meetings.json", token=token, headers=flutter)
    assert (after.status, after.json()) == (403, {"errors": {"base": ["Forbidden. Need user."]}})
