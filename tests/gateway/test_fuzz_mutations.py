"""Byte-level mutations of real requests, over every REST route, through the real gateway and
server: invalid UTF-8, NUL, overlong encodings, huge values, duplicated keys and wrong content
types. Whatever arrives: never a 5xx, always a JSON body on an error, no internal names, no
error or traceback in the server's log, and a refused request changes no row.

`make test` sends FUZZ_MUTATIONS requests (1,500 by default; with the property tests of
test_fuzz.py over 3,000 in all); `make fuzz` sends 50,000. Examples are derandomized: the same
requests on every run and machine, so a failure is reproducible.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.domain import service_keys
from tests.conftest import Account
from tests.gateway.conftest import Gateway, create_meeting, db_fingerprint
from tests.gateway.test_fuzz import LEAKS

EXAMPLES = int(os.environ.get("FUZZ_MUTATIONS", "1500"))
INTERNAL_NAMES = ("meetings.v1", "TYPE_", "type.googleapis.com", "google.protobuf", "Internal")
NO_SUCH_ID = "0123456789abcdef01234567"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # path and query; {id}: the host's meeting
    body: bytes = b""
    content_type: str = ""
    who: str = "host"  # host, admin (the admin key), or none


MEETING = b'{"name": "Sync", "start_date": 1613729948, "end_date": 1613731012}'
# One real request per REST route (the google.api.http bindings in protos/), as SDKs send them.
ROUTES = [
    Request("POST", "/meetings", MEETING, JSON),
    Request("POST", "/meetings.json", b'{"name": "S", "start_date": 1, "end_date": 2, '
            b'"attendees": [{"id": 5}, {"email": "a@b.co"}], "notify": false, '
            b'"notify_before": {"metric": "hours", "value": 1}, '
            b'"timezone": {"offset": 120, "name": "Europe/Riga"}}', JSON),
    Request("GET", "/meetings?_id={id}"),
    Request("GET", "/meetings/{id}"),
    Request("GET", "/meetings.json?created_at[gt]=2021-02-19T10%3A26%3A49.013Z&limit=5"),
    Request("GET", "/meetings?start_date[in]=1,2&end_date[nin][]=3&scheduled=false"),
    Request("GET", "/meetings", b"start_date[gte]=1613729948&scheduled=true", FORM),
    Request("GET", "/v2/meetings?limit=2&offset=1"),
    Request("PUT", "/meetings/{id}", b'{"name": "Renamed", "record": false}', JSON),
    Request("PUT", "/meetings/{id}.json", b'{"attendees": [{"email": "g@example.org"}]}', JSON),
    Request("DELETE", f"/meetings/{NO_SUCH_ID}"),
    Request("GET", "/meetings/{id}/notifications"),
    Request("GET", "/meetings/recordings/{id}"),
    Request("GET", f"/recordings/{NO_SUCH_ID}/download?expires=1&signature=abc", who="none"),
    Request("POST", "/session", b'{"user": {"login": "nobody", "password": "wrong pass"}}',
            JSON, who="none"),
    Request("POST", "/session", b'{"user": {"guest": "1", "full_name": "Guest"}}', JSON,
            who="none"),
    Request("GET", "/session"),
    Request("DELETE", "/session", who="none"),
    Request("POST", "/session.json", b'{"application_id": 1, "auth_key": "k", "nonce": 5, '
            b'"timestamp": 9, "signature": "ab"}', JSON, who="none"),
    Request("POST", "/login", b'{"login": "host", "password": "wrong pass"}', JSON),
    Request("POST", "/login.json", b'{"email": "x@example.com", "password": "wrong pass"}', JSON),
    Request("DELETE", "/login", who="none"),
    Request("POST", "/users", b'{"user": {"login": "fuzzed", "password": "a long secret", '
            b'"email": "f@example.com", "full_name": "F", "tag_list": "a,b", "timezone": 60}}',
            JSON),
    Request("GET", "/users/v2.json?id[in][]=1&id[in][]=2&login=host&sort_desc=id&limit=5"),
    Request("GET", "/users/v2?full_name[start_with]=Host&created_at[gt]=2020-01-01"),
    Request("GET", "/users/1"),
    Request("PUT", "/users/999999", b'{"user": {"full_name": "New", "website": "w.example"}}',
            JSON),
    Request("DELETE", "/users/999999"),
    Request("GET", f"/chat/Dialog.json?_id={NO_SUCH_ID}&limit=5&skip=0"),
    Request("GET", f"/chat/Dialog?_id[in]={NO_SUCH_ID},{NO_SUCH_ID}"),
    Request("POST", f"/chat/Dialog/{NO_SUCH_ID}/subscribe"),
    Request("GET", f"/chat/Message?chat_dialog_id={NO_SUCH_ID}&date_sent[lt]=1893456000&limit=5"
            "&sort_desc=date_sent&mark_as_read=0"),
    Request("POST", "/chat/Message.json", b'{"chat_dialog_id": "' + NO_SUCH_ID.encode()
            + b'", "message": "hi", "attachments": [{"type": "image", "id": "1"}]}', JSON),
    Request("PUT", f"/chat/Message/{NO_SUCH_ID}", b'{"chat_dialog_id": "' + NO_SUCH_ID.encode()
            + b'", "read": 1}', JSON),
    Request("DELETE", f"/chat/Message/{NO_SUCH_ID},{NO_SUCH_ID}?force=1"),
    Request("GET", f"/chat/Message/unread.json?chat_dialog_ids={NO_SUCH_ID},{NO_SUCH_ID}"),
    Request("POST", "/admin/meetings", b'{"user_id": 1, "name": "A", "start_date": 1, '
            b'"end_date": 2}', JSON, who="admin"),
    Request("GET", "/admin/meetings?name=sync&host=host&start_from=1&limit=5", who="admin"),
    Request("GET", "/admin/meetings/{id}", who="admin"),
    Request("GET", "/admin/meetings/recordings/{id}", who="admin"),
    Request("DELETE", f"/admin/meetings/recordings/{NO_SUCH_ID}", who="admin"),
    Request("GET", "/admin/settings/meetings", who="admin"),
    Request("PUT", "/admin/settings/meetings",
            b'{"meeting_url_template": "https://meet.example.com/%s"}', JSON, who="admin"),
    Request("GET", "/admin/webhooks/deliveries?limit=3", who="admin"),
    Request("POST", "/admin/webhooks/deliveries/123/resend", b"{}", JSON, who="admin"),
    Request("GET", "/admin/dashboard", who="admin"),
]  # fmt: skip

# What a mutation inserts into the URL (URL-legal characters only: anything else is not HTTP).
URL_PIECES = [
    "%ff", "%c0%af", "%ed%a0%80", "%f4%90%80%80", "%00", "%0a", "%", "%zz", "%2f", "%5B", "[",
    "]", "[]", "&", "=", "&&==", "..", "/", "//", "?", "~", "%e2%80%ae", "%ef%bf%bd",
    "x" * 9000, "9" * 40, "-1", ".json",
]  # fmt: skip
# ... and into a body.
BODY_PIECES = [
    b"\x00", b"\\u0000", b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b'"',
    b"{", b"}", b"[", b",", b":", b"\\", b"\\ud800", b'"name": "dup", ', b'"record": "yes", ',
    b"1e999", b"-0", b"null", b"%ff", b"&x=%00", b" " * 1000, b"x" * 300_000,
]  # fmt: skip
CONTENT_TYPES = [
    JSON, FORM, "text/plain", "", "application/json; charset=latin1", "multipart/form-data",
    "application/grpc-web", "application/grpc-web+json", "application/octet-stream",
]  # fmt: skip

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _insert(text: bytes, piece: bytes, position: int) -> bytes:
    at = position % (len(text) + 1)
    return text[:at] + piece + text[at:]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[Request, bytes, bytes, str]:
    """A route's request with one to three mutations: (request, target, body, content type)."""
    request = draw(st.sampled_from(ROUTES))
    target, body, content_type = request.target.encode(), request.body, request.content_type
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        where = draw(st.sampled_from(["url", "url", "body", "body", "content-type", "delete"]))
        position = draw(st.integers(min_value=0, max_value=10_000))
        if where == "url":
            piece = draw(st.sampled_from(URL_PIECES)).encode()
            target = b"/" + _insert(target[1:], piece, position)
        elif where == "body":
            body = _insert(body, draw(st.sampled_from(BODY_PIECES)), position)
        elif where == "content-type":
            content_type = draw(st.sampled_from(CONTENT_TYPES))
        elif body:
            start = position % len(body)
            body = body[:start] + body[start + draw(st.integers(min_value=1, max_value=8)) :]
    return request, target, body, content_type


@pytest.fixture(scope="module")
def targets(gateway: Gateway, module_accounts: dict[str, Account], pool: Any) -> dict[str, str]:
    with pool.connection_context():
        admin_key = service_keys.issue(service_keys.ADMIN)
    meeting = create_meeting(gateway, module_accounts["host"].token)
    return {"id": meeting["_id"], "admin": admin_key}


@FUZZ
@given(case=mutated())
def test_mutated_requests_are_refused_cleanly(
    gateway: Gateway,
    module_accounts: dict[str, Account],
    targets: dict[str, str],
    conn: Any,
    caplog: pytest.LogCaptureFixture,
    case: tuple[Request, bytes, bytes, str],
) -> None:
    caplog.clear()
    request, target, body, content_type = case
    headers = {"Content-Type": content_type} if content_type else {}
    if request.who == "admin":
        headers["CB-Administration-API-Key"] = targets["admin"]
    path = target.decode().replace("{id}", targets["id"])
    before = {status: db_fingerprint(conn, status) for status in (400, 401)}
    # Gateway.call checks every reply: no grpc-* or internal headers, JSON {"errors"} on a 4xx.
    reply = gateway.call(
        request.method,
        path,
        token=module_accounts["host"].token if request.who == "host" else None,
        body=body or None,
        headers=headers,
    )
    assert reply.status < 500, (reply.status, reply.body[:300])
    text = reply.body.decode("utf-8")  # strict: a body is always valid UTF-8
    sent = path + body.decode(errors="replace")
    for name in (*LEAKS, *INTERNAL_NAMES):
        assert name not in text or name in sent, text[:300]
    if reply.status >= 400:
        counted = 401 if reply.status in (401, 429) else 400
        assert db_fingerprint(conn, reply.status) == before[counted], (reply.status, text[:300])
    # The server (in this process) logged no error or traceback for it.
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, errors
