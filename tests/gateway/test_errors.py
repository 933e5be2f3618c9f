"""Bad requests get the documented status and JSON body and change nothing; no internals leak."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from server.domain import auth, clock
from server.storage.models import Session
from tests.conftest import Account
from tests.gateway.conftest import (
    Gateway,
    create_meeting,
    db_snapshot,
    raw_request,
    start_envoy,
    stop_envoy,
)

NOT_FOUND = {"errors": ["The resource wasn't found"]}
NO_SESSION = {"errors": {"base": ["Required session does not exist"]}}
TOO_LARGE = {"errors": ["The request body is too large"]}
JSON = {"Content-Type": "application/json"}


@dataclass
class Bad:
    method: str
    path: str  # {id}: the host's meeting
    status: int
    body: Any  # the whole JSON body, or a substring of the one message in {"errors": [...]}
    user: str | None = "host"  # whose token; None: no token
    json_body: Any = None
    raw: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


VALID = {"name": "n", "start_date": 1000, "end_date": 2000}
CASES = {
    # Malformed JSON and wrong types: 400 with the transcoder's explanation.
    "bad JSON on create": Bad("POST", "/meetings", 400, "Expected , or }",
                              raw='{"name": "x" "y"}', headers=JSON),
    "bad JSON on update": Bad("PUT", "/meetings/{id}", 400, "Unexpected token",
                              raw="name=x", headers=JSON),
    "truncated JSON": Bad("PUT", "/meetings/{id}", 400, "", raw='{"name": "x', headers=JSON),
    "unclosed object": Bad("PUT", "/meetings/{id}", 400, "Unexpected end of string",
                           raw='{"name": "x"', headers=JSON),
    "text after the object": Bad("PUT", "/meetings/{id}", 400, "before end of input",
                                 raw='{"name": "x"} x', headers=JSON),
    "a list as the body": Bad("PUT", "/meetings/{id}", 400, "not repeating",
                              raw="[1, 2]", headers=JSON),
    "a key given twice": Bad("PUT", "/meetings/{id}", 400, "already set",
                             raw='{"record": true, "record": false}', headers=JSON),
    # The transcoder echoes the body: control characters and backslashes come back escaped.
    "control characters in bad JSON": Bad("POST", "/meetings", 400, '\t"a\\b" "c"}',
                                          raw='{"name":\t"a\\b" "c"}', headers=JSON),
    "a string for a number": Bad("POST", "/meetings", 400, "start_date",
                                 json_body=VALID | {"start_date": "tomorrow"}),
    "a number for a string": Bad("PUT", "/meetings/{id}", 400, "name", json_body={"name": 5}),
    "a list for a string": Bad("PUT", "/meetings/{id}", 400, "not repeating",
                               json_body={"name": ["x"]}),
    "a word for a number in the query": Bad("GET", "/meetings?start_date[gte]=soon", 400,
                                            "start_date"),
    "a negative limit": Bad("GET", "/meetings?limit=-1", 400, "limit"),
    "a bad timestamp": Bad("GET", "/meetings?created_at[gt]=yesterday", 400, "created_at"),
    # Unknown operators, fields and parameters: 422 naming them.
    "unknown operator": Bad("GET", "/meetings?start_date[between]=1,2", 422, {"errors": {
        "start_date[between]": ["unsupported operator: use eq, gt, gte, lt, lte, ne, in or nin"]}}),
    "operator on a plain field": Bad("GET", "/meetings?scheduled[ne]=true", 422, {"errors": {
        "scheduled[ne]": ["takes no operator: use scheduled=value"]}}),
    "list suffix on a single-value operator": Bad("GET", "/meetings?end_date[gt][]=1", 422,
        {"errors": {"end_date[gt][]": [
            "unsupported operator: use eq, gt, gte, lt, lte, ne, in or nin"]}}),
    "unknown filter field": Bad("GET", "/meetings?name[gte]=a", 422,
                                {"errors": {"name[gte]": ["is not a supported parameter"]}}),
    "unknown parameter": Bad("GET", "/meetings?color=red&limit=1", 422,
                             {"errors": {"color": ["is not a supported parameter"]}}),
    "unknown parameter in a form body": Bad("GET", "/meetings.json", 422,
        {"errors": {"sort": ["is not a supported parameter"]}}, raw="sort=name&limit=1"),
    "malformed parameter name": Bad("GET", "/meetings?start_date[gte=1", 422,
        {"errors": {"start_date[gte": ["is not a well-formed parameter name"]}}),
    "parameter on get-one": Bad("GET", "/meetings/{id}?limit=1", 422,
                                {"errors": {"limit": ["is not a supported parameter"]}}),
    "parameter on update": Bad("PUT", "/meetings/{id}?force=1", 422,
        {"errors": {"force": ["is not a supported parameter"]}}, json_body={"name": "x"}),
    "parameter on delete": Bad("DELETE", "/meetings/{id}?force=1", 422,
                               {"errors": {"force": ["is not a supported parameter"]}}),
    "parameter on create": Bad("POST", "/meetings?x=1", 422,
        {"errors": {"x": ["is not a supported parameter"]}}, json_body=VALID),
    "parameter on session": Bad("GET", "/session?x=1", 422,
                                {"errors": {"x": ["is not a supported parameter"]}}),
    "unknown field on create": Bad("POST", "/meetings", 422,
        {"errors": {"strat_date": ["is not a meeting field"]}},
        json_body=VALID | {"strat_date": 5}),
    "unknown fields on update": Bad("PUT", "/meetings/{id}", 422,
        {"errors": {"colour": ["is not a meeting field"], "size": ["is not a meeting field"]}},
        raw='{"colour": "red", "record": true, "size": {"a": [1, "}"]}}', headers=JSON),
    # The server's validation: 422, one entry per bad field.
    "blank name and missing dates": Bad("POST", "/meetings", 422, {"errors": {
        "start_date": ["is required"], "end_date": ["is required"],
        "name": ["must not be blank"]}}, json_body={"name": " "}),
    "milliseconds": Bad("PUT", "/meetings/{id}", 422, {"errors": {"start_date": [
        "is beyond year 9999: send unix time in seconds, not milliseconds"]}},
        json_body={"start_date": 1613729948000}),
    "body and path _id differ": Bad("PUT", "/meetings/{id}", 422,
        {"errors": {"_id": ["does not match the meeting being updated"]}},
        json_body={"_id": "0123456789abcdef01234567", "name": "x"}),
    # Too large.
    "huge create": Bad("POST", "/meetings", 413, TOO_LARGE,
                       json_body=VALID | {"name": "x" * 300_000}),
    "huge update": Bad("PUT", "/meetings/{id}", 413, TOO_LARGE,
                       json_body={"name": "x" * 300_000}),
    "huge form body on GET": Bad("GET", "/meetings", 413, TOO_LARGE,
                                 raw="limit=1&pad=" + "x" * 2_000_000),
    "a GET form body past the URL limit": Bad("GET", "/meetings", 413, TOO_LARGE,
                                             raw="limit=1&pad=" + "x" * 300_000),
    "a URL of 16,000 characters": Bad("GET", "/meetings?limit=1&pad=" + "x" * 16_000, 414,
                                      {"errors": ["The URL is too long"]}),
    # Bytes no client should send: invalid UTF-8 (400), NUL characters (422).
    "invalid UTF-8 in the path": Bad("GET", "/meetings/%ff", 400,
                                     {"errors": ["the path is not valid UTF-8"]}),
    "an overlong encoding in _id": Bad("GET", "/meetings?_id=%c0%af", 400,
                                       {"errors": ["_id is not valid UTF-8"]}),
    "invalid UTF-8 in a filter": Bad("GET", "/meetings?start_date[gte]=%e2%28%a1", 400,
                                     {"errors": ["start_date[gte] is not valid UTF-8"]}),
    "invalid UTF-8 in a form body": Bad("GET", "/meetings", 400,
                                        {"errors": ["_id is not valid UTF-8"]}, raw="_id=%ff"),
    "invalid UTF-8 in a download link": Bad("GET", "/recordings/%ff/download?expires=1&signature=x",
                                            400, {"errors": ["the path is not valid UTF-8"]},
                                            user=None),
    "invalid UTF-8 in an update's path": Bad("PUT", "/meetings/%ed%a0%80", 400,
                                             {"errors": ["the path is not valid UTF-8"]},
                                             json_body={"name": "x"}),
    "NUL in a meeting name": Bad("POST", "/meetings", 422,
        {"errors": {"name": ["must not contain NUL characters"]}},
        json_body=VALID | {"name": "a\u0000b"}),
    "NUL in an attendee email": Bad("PUT", "/meetings/{id}", 422,
        {"errors": {"attendees": ["must not contain NUL characters"]}},
        json_body={"attendees": [{"email": "a\u0000@example.com"}]}),
    "NUL in a time zone": Bad("PUT", "/meetings/{id}", 422,
        {"errors": {"timezone": ["must not contain NUL characters"]}},
        json_body={"timezone": {"offset": 0, "name": "UTC\u0000"}}),
    "NUL as one meeting's _id": Bad("GET", "/meetings?_id=%00", 404, NOT_FOUND),
    "NUL in an _id filter": Bad("GET", "/meetings?_id=%00&limit=1", 422,
                      {"errors": {"_id": ["must not contain NUL characters"]}}),
    "NUL in a sign-in": Bad("POST", "/session", 422,
        {"errors": {"login": ["must not contain NUL characters"]}}, user=None,
        json_body={"user": {"login": "host\u0000", "password": "correct horse battery"}}),
    "NUL in a guest name": Bad("POST", "/session", 422,
        {"errors": {"full_name": ["must not contain NUL characters"]}}, user=None,
        json_body={"user": {"guest": "1", "full_name": "G\u0000"}}),
    # Messages never name our protobuf types.
    "parameter on notifications": Bad("GET", "/meetings/{id}/notifications?x=1", 400, '"x"'),
    "a word for a whole number": Bad("GET", "/meetings?limit=ten", 400, "limit"),
    # Who may do what.
    "missing token": Bad("GET", "/meetings", 401, NO_SESSION, user=None),
    "unknown token": Bad("POST", "/meetings", 401, NO_SESSION, user="nobody", json_body=VALID),
    "expired token": Bad("PUT", "/meetings/{id}", 401, NO_SESSION, user="expired",
                         json_body={"name": "x"}),
    "a stranger reads": Bad("GET", "/meetings?_id={id}", 404, NOT_FOUND, user="stranger"),
    "a stranger updates": Bad("PUT", "/meetings/{id}", 404, NOT_FOUND, user="stranger",
                              json_body={"record": True}),
    "a stranger deletes": Bad("DELETE", "/meetings/{id}.json", 404, NOT_FOUND, user="stranger"),
    "an attendee updates": Bad("PUT", "/meetings/{id}", 403, None, user="attendee",
                               json_body={"record": True}),
    "an attendee deletes": Bad("DELETE", "/meetings/{id}", 403, None, user="attendee"),
    "a meeting that does not exist": Bad("GET", "/meetings/0123456789abcdef01234567", 404,
                                         NOT_FOUND),
    # Routes that do not exist.
    "unknown path": Bad("GET", "/meetingz", 404, NOT_FOUND),
    "unknown method": Bad("PATCH", "/meetings/{id}", 404, NOT_FOUND, json_body={"name": "x"}),
}  # fmt: skip


def _token(user: str | None, accounts: dict[str, Account]) -> str | None:
    if user is None:
        return None
    if user == "nobody":
        return "not-a-token"
    if user == "expired":
        session = auth.issue_token("host", 60)
        Session.update(expires_at=clock.now() - timedelta(seconds=1)).where(
            Session.token_hash == auth.token_hash(session.token)
        ).execute()
        return session.token
    return accounts[user].token


@pytest.fixture(scope="module")
def meeting(gateway: Gateway, module_accounts: dict[str, Account]) -> dict[str, Any]:
    """The host's meeting, with the attendee: every bad request below leaves it as it is."""
    return create_meeting(
        gateway,
        module_accounts["host"].token,
        attendees=[{"id": module_accounts["attendee"].user_id}],
    )


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_request(
    gateway: Gateway,
    module_accounts: dict[str, Account],
    meeting: dict[str, Any],
    conn: Any,
    case: Bad,
) -> None:
    token = _token(case.user, module_accounts)
    before = db_snapshot(conn)

    reply = gateway.call(
        case.method,
        case.path.format(id=meeting["_id"]),
        token=token,
        json_body=case.json_body,
        body=case.raw,
        headers=case.headers,
    )

    assert reply.status == case.status, reply
    body = reply.json()
    if case.body is None:
        assert list(body["errors"]) == ["base"] and len(body["errors"]["base"]) == 1
    elif isinstance(case.body, str):
        assert set(body) == {"errors"} and len(body["errors"]) == 1, body
        assert case.body in body["errors"][0]
    else:
        assert body == case.body
    for internal in ("meetings.v1", "TYPE_", "type.googleapis.com", "google.protobuf"):
        assert internal not in reply.body.decode(), reply
    assert db_snapshot(conn) == before
    host = module_accounts["host"]
    assert gateway.call("GET", f"/meetings/{meeting['_id']}", token=host.token).json() == meeting


def test_many_field_errors_fit_in_the_reply(
    gateway: Gateway, module_accounts: dict[str, Account]
) -> None:
    """The error body travels in a trailer: a 422 for 500 bad attendees still arrives, with
    the first ten problems and a count of the rest."""
    attendees = [{"email": f"not-an-address-{i}"} for i in range(500)]
    reply = gateway.call(
        "POST",
        "/meetings",
        token=module_accounts["host"].token,
        json_body={"name": "Big", "start_date": 1, "end_date": 2, "attendees": attendees},
    )
    assert reply.status == 422
    problems = reply.json()["errors"]["attendees"]
    assert len(problems) == 11 and problems[0] == "attendee 1: email is not a valid address"
    assert problems[-1] == "and 490 more problems like these"


def test_http2_replies_have_no_grpc_headers_or_trailers(
    gateway: Gateway, module_accounts: dict[str, Account], meeting: dict[str, Any]
) -> None:
    token = module_accounts["host"].token
    for path, token_header in (
        ("/meetings", token),  # streamed: the transcoder ends it with trailers
        (f"/meetings/{meeting['_id']}", token),
        ("/meetings", "bad"),
    ):
        out = subprocess.run(
            ["curl", "-sS", "-i", "--http2-prior-knowledge", "-H", f"CB-Token: {token_header}",
             f"{gateway.base}{path}"],
            capture_output=True, text=True, timeout=15, check=True,
        ).stdout  # fmt: skip
        assert out.startswith("HTTP/2 "), out
        assert "grpc-" not in out.lower() and "cb-error-body" not in out.lower(), out


def test_upstream_down_is_a_json_503(tmp_path: Path) -> None:
    """A gateway whose server is not running: a JSON 503 without Envoy's connection details."""
    closed_port = raw_port = 1  # nothing listens on port 1
    assert raw_port == closed_port
    process, gateway = start_envoy(tmp_path, closed_port)
    try:
        reply = gateway.call("GET", "/meetings", token="any")
        assert (reply.status, reply.json()) == (
            503,
            {"errors": ["The service is temporarily unavailable, try again"]},
        )
        assert gateway.stat("http.gateway.lua.errors") == 0
        # Native gRPC callers get a gRPC status, untouched by the Lua filter.
        native = raw_request(
            gateway.host, gateway.port, "POST", "/meetings.v1.MeetingService/GetMeeting", b"",
            {"content-type": "application/grpc", "te": "trailers"},
        )  # fmt: skip
        assert native.header("grpc-status") == "14"  # UNAVAILABLE
    finally:
        stop_envoy(process)


@pytest.mark.parametrize(
    ("path", "body", "content_type"),
    [
        ("/meetings", b'{"name": "n"}', "application/grpc"),
        ("/meetings/{id}", b'{"colour": "red"}', "application/grpc-web+json"),
        ("/meetings/{id}", b'{"name": "changed"}', "application/grpc+proto"),
        # gRPC-Web passes to our services' methods only; a path merely shaped like a method
        # (a mutated /login.json) gets REST's answer, never a gRPC-Web frame.
        ("/login.j/son", b'{"login": "host"}', "application/grpc-web"),
        ("/other.v1.Service/Method", b"", "application/grpc-web-text"),
    ],
)
def test_a_grpc_content_type_on_a_rest_path_is_refused(
    gateway: Gateway,
    module_accounts: dict[str, Account],
    meeting: dict[str, Any],
    conn: Any,
    path: str,
    body: bytes,
    content_type: str,
) -> None:
    """Nothing a REST path does is skipped by claiming to be gRPC: 415. Envoy frames any reply
    to a request that says it is native gRPC as gRPC (its content type decides, before any
    filter runs), so there the refusal arrives as a gRPC error that says why."""
    before = db_snapshot(conn)
    token = module_accounts["host"].token
    reply = raw_request(
        gateway.host,
        gateway.port,
        "PUT" if "{id}" in path else "POST",
        path.format(id=meeting["_id"]),
        body,
        {"Content-Type": content_type, "CB-Token": token},
    )
    why = "gRPC content types are for gRPC methods"
    if content_type.startswith("application/grpc-web"):
        assert (reply.status, reply.header("content-type")) == (415, "application/json")
        assert why in reply.json()["errors"][0]
    else:
        assert reply.header("grpc-status") not in (None, "0"), reply
        assert why in (reply.header("grpc-message") or "")
    assert db_snapshot(conn) == before
