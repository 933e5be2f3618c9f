"""Application sessions, sign-up, sign-in to a session (/login), users and users/v2, through
the real Envoy, in the hosted API's REST shapes."""

from __future__ import annotations

from typing import Any

from server.domain import applications, auth
from tests.gateway.conftest import Gateway

NEED_USER = {"errors": {"base": ["Forbidden. Need user."]}}
PASSWORD = "correct horse battery"


def _app_session(gateway: Gateway) -> str:
    app = applications.current()
    reply = gateway.call(
        "POST", "/session.json", json_body={"application_id": app.id, "auth_key": app.auth_key}
    )
    assert reply.status == 200, reply.body
    session = reply.json()["session"]
    assert session["user_id"] == 0 and session["application_id"] == app.id
    assert "user" not in session
    token: str = session["token"]
    return token


def _sign_up(gateway: Gateway, token: str, **user: Any) -> Any:
    return gateway.call("POST", "/users.json", token=token, json_body={"user": user})


def test_an_application_session_signs_up_and_in_and_nothing_else(gateway: Gateway, db: Any) -> None:
    token = _app_session(gateway)
    # Nothing but sign-up and sign-in: every meetings call is the hosted API's 403.
    for method, path in (("GET", "/meetings"), ("POST", "/meetings"), ("GET", "/users/v2")):
        refused = gateway.call(
            method, path, token=token, json_body={} if method == "POST" else None
        )
        assert (refused.status, refused.json()) == (403, NEED_USER), path
    created = _sign_up(gateway, token, login="nina", password=PASSWORD, email="nina@example.com",
                       full_name="Nina N", phone="+100", tag_list="a, b", timezone=180)  # fmt: skip
    assert created.status == 200, created.body
    user = created.json()["user"]
    shown = ("login", "email", "full_name", "phone", "user_tags", "timezone")
    assert {k: user[k] for k in shown} == {
        "login": "nina", "email": "nina@example.com", "full_name": "Nina N", "phone": "+100",
        "user_tags": "a,b", "timezone": 180,
    }  # fmt: skip
    assert user["website"] is None and user["last_request_at"] is None
    # POST /login upgrades the session; GET /session shows it with its own token.
    logged = gateway.call("POST", "/login.json", token=token,
                          json_body={"login": "nina", "password": PASSWORD})  # fmt: skip
    assert (logged.status, logged.json()["user"]["id"]) == (200, user["id"])
    assert gateway.call("GET", "/meetings", token=token).status == 200
    session = gateway.call("GET", "/session.json", token=token).json()["session"]
    assert (session["token"], session["user_id"], session["user"]["login"]) == (
        token, user["id"], "nina"
    )  # fmt: skip
    # DELETE /login: an application session again (the token still works for that).
    assert gateway.call("DELETE", "/login.json", token=token).status == 200
    assert gateway.call("GET", "/meetings", token=token).json() == NEED_USER
    again = {"email": "NINA@example.com", "password": PASSWORD}
    by_email = gateway.call("POST", "/login", token=token, json_body=again)
    assert by_email.status == 200


def test_sign_in_by_email_and_the_refusals(gateway: Gateway, db: Any) -> None:
    auth.create_user("omar", PASSWORD, "omar@example.com")
    app = applications.current()
    by_email = gateway.call("POST", "/session", json_body={
        "application_id": app.id, "auth_key": app.auth_key,
        "user": {"email": "omar@example.com", "password": PASSWORD}})  # fmt: skip
    assert by_email.status == 200 and by_email.json()["session"]["user"]["login"] == "omar"
    cases = [
        ({"application_id": app.id, "auth_key": "wrong"}, 422, {"base": ["Unexpected auth key"]}),
        ({"application_id": app.id + 1, "auth_key": app.auth_key}, 422,
         {"base": ["No application found"]}),
        ({}, 422, {"application_id": ["is required"]}),
        ({"application_id": app.id, "auth_key": app.auth_key,
          "user": {"email": "omar@example.com", "password": "wrong password"}}, 401,
         {"base": ["Unauthorized"]}),
        ({"application_id": "abc"}, 400, None),
    ]  # fmt: skip
    for body, status, errors in cases:
        reply = gateway.call("POST", "/session", json_body=body)
        assert reply.status == status, (body, reply.body)
        if errors is not None:
            assert reply.json() == {"errors": errors}
        else:
            assert "application_id" in reply.json()["errors"][0]
            assert "TYPE_" not in reply.body.decode()


def test_sign_up_with_the_auth_key_header_and_its_refusals(gateway: Gateway, db: Any) -> None:
    app = applications.current()
    key = {"CB-AuthKey": app.auth_key}
    pia = {"user": {"email": "pia@example.com", "password": PASSWORD}}
    made = gateway.call("POST", "/users", headers=key, json_body=pia)
    assert made.status == 200 and made.json()["user"]["login"] == "pia@example.com"
    cases = [
        (key, {"login": "pia@example.com", "password": PASSWORD}, 422,
         {"errors": {"login": ["has already been taken"]}}),
        (key, {"login": "pia2", "email": "PIA@example.com", "password": PASSWORD}, 422,
         {"errors": {"email": ["has already been taken"]}}),
        (key, {"login": "quinn", "password": "short"}, 422,
         {"errors": {"password": ["must be 8 to 1024 characters"]}}),
        (key, {"password": PASSWORD}, 422, {"errors": {"login": ["or email is required"]}}),
        (key, {"login": "quinn", "password": PASSWORD, "tag_list": "a,b,c,d,e,f"}, 422,
         {"errors": {"tag_list": ["must have at most 5 tags"]}}),
        (key, {"login": "quinn", "password": PASSWORD, "timezone": 5000}, 422,
         {"errors": {"timezone": ["must be minutes of UTC offset, -720 to 840"]}}),
        (key, {"login": "quinn", "password": PASSWORD, "full_name": "a\u0000b"}, 422, None),
        ({"CB-AuthKey": "wrong"}, {"login": "quinn", "password": PASSWORD}, 422,
         {"errors": {"base": ["Unexpected auth key"]}}),
        ({}, {"login": "quinn", "password": PASSWORD}, 401,
         {"errors": {"base": ["Required session does not exist"]}}),
    ]  # fmt: skip
    for headers, user, status, body in cases:
        reply = gateway.call("POST", "/users", headers=headers, json_body={"user": user})
        assert reply.status == status, (user, reply.body)
        if body is not None:
            assert reply.json() == body
    # Keys the routes do not take are named, never dropped (the transcoder would drop them).
    unknown = [
        ("/users", {"user": {"login": "q", "password": PASSWORD, "is_admin": True}},
         {"user[is_admin]": ["is not a supported field"]}),
        ("/users", {"login": "q"}, {"login": ["is not a supported field"]}),
        ("/login", {"login": "q", "password": PASSWORD, "remember": 1},
         {"remember": ["is not a supported field"]}),
        ("/session", {"user": {"login": "q", "password": PASSWORD, "otp": "1"}},
         {"user[otp]": ["is not a supported field"]}),
    ]  # fmt: skip
    for path, sent, named in unknown:
        reply = gateway.call("POST", path, headers=key, json_body=sent)
        assert (reply.status, reply.json()) == (422, {"errors": named}), path


def _token(login: str, email: str) -> tuple[int, str]:
    user_id = auth.create_user(login, PASSWORD, email, login.title())
    return user_id, auth.issue_token(login, 3600).token


def test_users_v2_one_user_and_ones_own_account(gateway: Gateway, db: Any) -> None:
    ruth, ruth_token = _token("ruth", "ruth@example.com")
    sam, _ = _token("sam", "sam@example.com")
    tom, tom_token = _token("tomas", "tomas@example.com")
    page = gateway.call(
        "GET", f"/users/v2.json?id[in][]={sam}&id[in][]={ruth}&sort_desc=id&limit=10",
        token=ruth_token,
    ).json()  # fmt: skip
    assert (page["limit"], page["skip"], page["total_entries"]) == (10, 0, 2)
    assert [u["id"] for u in page["items"]] == sorted([sam, ruth], reverse=True)
    emails = {u["login"]: u["email"] for u in page["items"]}
    assert emails == {"ruth": "ruth@example.com", "sam": None}  # only one's own
    assert (
        gateway.call("GET", "/users/v2?login=SAM", token=ruth_token).json()["items"][0]["id"] == sam
    )
    prefix = gateway.call("GET", "/users/v2?full_name[start_with]=Toma", token=ruth_token).json()
    assert [u["id"] for u in prefix["items"]] == [tom] and prefix["limit"] == 5
    refusals = [
        ("/users/v2?created_at[gt]=2020-01-01", 422, "base"),  # no stand-alone filter
        ("/users/v2?login[start_with]=ab", 422, "login[start_with]"),
        ("/users/v2?login[gt]=a", 422, "login[gt]"),
        ("/users/v2?nickname=a", 422, "nickname"),
        ("/users/v2?id=1&limit=500", 422, "limit"),
        ("/users/v2?id=1&sort_asc=password_hash", 422, "sort_asc"),
        ("/users/v2?id=1&created_at[gt]=yesterday", 422, "created_at[gt]"),
        ("/users/v2?login=%00host", 422, "login[eq]"),  # found by make fuzz: was a 500
        ("/users/v2?user_tags[in][]=a%00", 422, "user_tags[in]"),
    ]
    for path, status, field in refusals:
        reply = gateway.call("GET", path, token=ruth_token)
        assert (reply.status, field in reply.json()["errors"]) == (status, True), (path, reply.body)
    one = gateway.call("GET", f"/users/{sam}.json", token=ruth_token).json()["user"]
    assert (one["login"], one["email"]) == ("sam", None)
    assert gateway.call("GET", "/users/999999", token=ruth_token).status == 404
    # One's own profile only; a new password needs the old one.
    profile = {"user": {"full_name": "Ruth R", "website": "ruth.example"}}
    changed = gateway.call("PUT", f"/users/{ruth}.json", token=ruth_token, json_body=profile)
    assert (changed.json()["user"]["full_name"], changed.json()["user"]["website"]) == (
        "Ruth R", "ruth.example"
    )  # fmt: skip
    others = gateway.call(
        "PUT", f"/users/{sam}", token=ruth_token, json_body={"user": {"full_name": "x"}}
    )
    assert others.status == 403
    no_old = gateway.call("PUT", f"/users/{ruth}", token=ruth_token,
                          json_body={"user": {"password": "another long secret"}})  # fmt: skip
    assert no_old.json() == {"errors": {"old_password": ["is required to set a new password"]}}
    new_password = gateway.call("PUT", f"/users/{ruth}", token=ruth_token, json_body={
        "user": {"password": "another long secret", "old_password": PASSWORD}})  # fmt: skip
    assert new_password.status == 200
    assert auth.sign_in("ruth", "another long secret", 60).user_id == ruth
    # Deleting oneself ends one's sessions.
    assert gateway.call("DELETE", f"/users/{sam}", token=ruth_token).status == 403
    assert gateway.call("DELETE", f"/users/{tom}.json", token=tom_token).status == 200
    assert gateway.call("GET", "/meetings", token=tom_token).status == 401
