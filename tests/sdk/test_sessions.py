"""Phase 2: application sessions, sign-up, sign-in and out, users, an expired session renewed
by the SDK's own callback, and the sign-in limits, with the stock JS SDK in Node and Chromium
(scenarios/sessions.js)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from server import app as server_app
from server.domain import auth
from tests.conftest import Account, make_account
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

FORBIDDEN = {"errors": {"base": ["Forbidden. Need user."]}}
# What every user object shows (the hosted API's keys; more may follow).
USER_KEYS = {"id", "login", "email", "full_name", "created_at", "updated_at"}
TOO_MANY = re.compile(r"Too many requests, try again in (\d+) s")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_an_application_session_may_not_touch_meetings(sdk: Sdk, runtime: str) -> None:
    run = sdk.run(runtime, "applicationSession", {})
    r = run.result
    assert_answered(run)
    assert refused(r["wrongKey"]) == (422, {"errors": {"base": ["Unexpected auth key"]}})
    assert refused(r["unknownApp"]) == (422, {"errors": {"base": ["No application found"]}})

    session = ok(r["session"])
    assert session["user_id"] == 0 and len(session["token"]) >= 32
    current = ok(r["current"])
    assert (current["token"], current["user_id"]) == (session["token"], 0)
    assert current["application_id"] == sdk.app.id and not current.get("user")
    for call in ("list", "create", "recordings"):
        assert refused(r[call]) == (403, FORBIDDEN), call


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_sign_up_then_log_in_and_out_of_one_session(sdk: Sdk, db: Any, runtime: str) -> None:
    args = {"login": "newbie", "password": PASSWORD, "email": "newbie@example.com",
            "fullName": "New Bie"}  # fmt: skip
    run = sdk.run(runtime, "signUpAndLogIn", args)
    r = run.result
    assert_answered(run)
    token = ok(r["session"])["token"]

    user = ok(r["signup"])["user"]
    assert USER_KEYS <= set(user), user
    assert (user["login"], user["email"], user["full_name"]) == (
        "newbie",
        "newbie@example.com",
        "New Bie",
    )
    assert rows(db, "SELECT id, login FROM users") == [(user["id"], "newbie")]

    # POST /login gives this session the user: same token, one session row.
    assert ok(r["login"])["id"] == user["id"]
    current = ok(r["current"])
    assert (current["token"], current["user_id"]) == (token, user["id"])
    assert current["application_id"] == sdk.app.id and current["user"]["id"] == user["id"]
    created = ok(r["created"])
    assert created["host_id"] == user["id"]
    assert ok(r["listed"]) == [created]

    # DELETE /login: an application session again, on the same token.
    assert r["logout"]["ok"], r["logout"]
    assert refused(r["afterLogout"]) == (403, FORBIDDEN)
    after = ok(r["currentAfterLogout"])
    assert (after["token"], after["user_id"]) == (token, 0)

    assert ok(r["loginByEmail"])["id"] == user["id"]
    assert ok(r["listedAgain"]) == [created]
    assert rows(db, "SELECT count(*) FROM sessions") == [(1,)]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_users_search_profile_and_account_deletion(
    sdk: Sdk, db: Any, host: Account, runtime: str
) -> None:
    attendee = make_account("attendee", "attendee@example.com")
    args = {"email": host.email, "password": PASSWORD, "ids": [host.user_id, attendee.user_id],
            "otherLogin": "attendee", "newFullName": "Hostess"}  # fmt: skip
    run = sdk.run(runtime, "users", args)
    r = run.result
    assert_answered(run)

    session = ok(r["session"])  # by email
    assert session["user_id"] == host.user_id
    assert ok(r["current"])["user"]["email"] == host.email

    # One's own email is shown, another user's is null.
    by_ids = ok(r["byIds"])
    assert {k: by_ids[k] for k in ("limit", "skip", "total_entries")} == {
        "limit": 100, "skip": 0, "total_entries": 2,
    }  # fmt: skip
    seen = [(u["id"], u["login"], u["email"]) for u in by_ids["items"]]
    assert seen == [(host.user_id, "host", host.email), (attendee.user_id, "attendee", None)]
    assert all(USER_KEYS <= set(u) for u in by_ids["items"]), by_ids
    by_login = ok(r["byLogin"])
    assert by_login["total_entries"] == 1
    assert [(u["id"], u["email"]) for u in by_login["items"]] == [(attendee.user_id, None)]
    paged = ok(r["paged"])
    assert (paged["limit"], paged["skip"], paged["total_entries"]) == (1, 1, 2)
    assert [u["id"] for u in paged["items"]] == [attendee.user_id]

    updated = ok(r["updated"])["user"]
    assert (updated["id"], updated["full_name"], updated["email"]) == (
        host.user_id, "Hostess", host.email,
    )  # fmt: skip

    # Deleting one's account ends its sessions.
    assert r["deleted"]["ok"], r["deleted"]
    assert refused(r["afterDelete"]) == (401, REQUIRED)
    assert rows(db, "SELECT count(*) FROM users WHERE id = %s", host.user_id) == [(0,)]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_an_expired_session_is_renewed_by_the_sdk_callback(
    sdk: Sdk, db: Any, host: Account, runtime: str
) -> None:
    def expire(step: str, data: dict[str, Any]) -> None:
        expired = db.execute_sql(
            "UPDATE sessions SET expires_at = now() - interval '1 minute' WHERE token_hash = %s",
            (auth.token_hash(data["token"]),),
        )
        assert expired.rowcount == 1

    run = sdk.run(runtime, "expiredSession", {"login": "host", "password": PASSWORD}, expire)
    r = run.result
    assert run.steps == ["expire"]
    assert_answered(run)
    old_token = ok(r["session"])["token"]
    assert ok(r["before"]) == []

    # The create was refused once as the SDK expects, then retried with a new session.
    creates = [
        q["status"] for q in run.requests if (q["method"], q["path"]) == ("POST", "/meetings.json")
    ]
    assert creates == [401, 200]
    assert r["expiredCallbacks"] == 1 and r["newToken"] != old_token
    created = ok(r["created"])
    assert (created["name"], created["host_id"]) == ("Standup", host.user_id)
    assert ok(r["listed"]) == [created]
    assert rows(db, "SELECT count(*) FROM meetings") == [(1,)]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_too_many_sign_ins_from_one_address(
    sdk: Sdk, host: Account, grpc_server: server_app.Service, runtime: str
) -> None:
    per_login, _ = grpc_server.settings.rate_failed_sign_in_per_login
    per_address, window = grpc_server.settings.rate_sign_in_per_address
    assert per_address > per_login + 1  # room for both limits in one window
    args = {"login": "host", "password": PASSWORD, "perLogin": per_login,
            "perAddress": per_address}  # fmt: skip
    run = sdk.run(runtime, "signInLimits", args)
    r = run.result
    assert_answered(run, own_fetches=1)

    # Wrong passwords up to the login's limit, then even the right one waits.
    assert r["wrong"] == [401] * per_login
    assert _too_many(r["locked"]) <= 900
    # Other logins, up to the address's limit; past it, everyone from here waits.
    assert r["others"] == [401] * (per_address - per_login - 1)
    assert _too_many(r["overAddress"]) <= window

    # Retry-After, which the SDK drops, reaches an app that reads the response itself.
    plain = ok(r["plainFetch"])
    assert plain["status"] == 429 and TOO_MANY.fullmatch(plain["body"]["errors"]["base"][0])
    assert plain["retryAfter"] is not None and 1 <= int(plain["retryAfter"]) <= window


def _too_many(outcome: dict[str, Any]) -> int:
    """The seconds a 429 says to wait."""
    code, info = refused(outcome)
    assert code == 429 and set(info) == {"errors"} and set(info["errors"]) == {"base"}, info
    match = TOO_MANY.fullmatch(info["errors"]["base"][0])
    assert match, info
    return int(match[1])
