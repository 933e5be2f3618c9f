"""Property-based fuzzing through the real gateway and server: whatever arrives, the answer is
a 2xx or a JSON 4xx, never a 5xx or internal text, and a refused change changes nothing."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.domain import meeting_values
from tests.conftest import Account
from tests.gateway.conftest import Gateway, create_meeting

# Each test sends this many requests (bounded: a few seconds each on 127.0.0.1).
EXAMPLES = 400
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same requests on every run: a failure is reproducible
    database=None,  # ...on every machine (no local example database replayed first)
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Internals that must never reach a body (unless the client sent them: errors name bad keys).
LEAKS = ("Traceback", "psycopg2", "peewee", "Exception", 'File "', "grpc_status")

# Every meeting field, the echoed read-only keys, and the admin API's host.
FIELDS = [*meeting_values.FIELDS, "host_id", "_id", "user_id"]
FILTER_KEYS = [
    "start_date",
    "end_date",
    "created_at",
    "updated_at",
    "scheduled",
    "limit",
    "offset",
    "_id",
    "name",
    "colour",
]
OPERATORS = [
    "",
    "[gt]",
    "[gte]",
    "[lt]",
    "[lte]",
    "[ne]",
    "[in]",
    "[nin]",
    "[in][]",
    "[between]",
    "[",
    "]",
    "[gte][lt]",
    ".gte",
    "%5Bgte%5D",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
plausible = {
    "name": st.text(max_size=300),
    "start_date": st.integers(min_value=-5, max_value=2**45) | st.floats(allow_nan=False),
    "end_date": st.integers(min_value=-5, max_value=2**45),
    "attendees": st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "id": st.integers(min_value=-3, max_value=2**33),
                "email": st.text(max_size=20),
            },
        ),
        max_size=5,
    ),
    "notify_before": st.fixed_dictionaries(
        {},
        optional={
            "metric": st.sampled_from(["minutes", "hours", "days", "weeks", "years", ""]),
            "value": st.integers(min_value=-2, max_value=100),
        },
    ),
    "timezone": st.fixed_dictionaries(
        {},
        optional={
            "offset": st.integers(min_value=-2000, max_value=2000),
            "name": st.sampled_from(["Europe/Riga", "America/New_York", "Mars/Base", "", "UTC"]),
        },
    ),
}
meeting_bodies = st.dictionaries(
    st.sampled_from(FIELDS) | st.text(max_size=8),
    st.one_of(json_values, *plausible.values()),
    max_size=8,
)
query_pairs = st.lists(
    st.tuples(
        st.builds(lambda k, op: k + op, st.sampled_from(FILTER_KEYS), st.sampled_from(OPERATORS)),
        st.one_of(
            st.integers(min_value=-5, max_value=2**50).map(str),
            st.text(max_size=25),
            st.sampled_from(["true", "false", "2021-02-19T10:26:49.013Z", "1,2", ""]),
        ),
    ),
    max_size=5,
)


@pytest.fixture(scope="module")
def host_meeting(gateway: Gateway, module_accounts: dict[str, Account]) -> dict[str, Any]:
    return create_meeting(gateway, module_accounts["host"].token, attendees=[{"id": 5}])


def check(reply: Any, sent: str | bytes = "") -> None:
    """Gateway.call already checks: no grpc-* headers, JSON {"errors": ...} on every 4xx."""
    assert reply.status < 500, (reply.status, reply.body[:300])
    text = reply.body.decode(errors="replace")
    sent_text = sent.decode(errors="replace") if isinstance(sent, bytes) else sent
    leaked = [leak for leak in LEAKS if leak in text and leak not in sent_text]
    assert not leaked, text[:300]


def test_a_key_named_like_an_internal_is_echoed_not_leaked(
    gateway: Gateway, module_accounts: dict[str, Account]
) -> None:
    """The case the fuzzer found: naming a bad key is not leaking anything."""
    reply = gateway.call(
        "POST", "/meetings", token=module_accounts["host"].token, json_body={"peewee": 1}
    )
    assert (reply.status, reply.json()) == (422, {"errors": {"peewee": ["is not a meeting field"]}})
    check(reply, '{"peewee": 1}')


@FUZZ
@given(body=meeting_bodies)
def test_create_bodies(
    gateway: Gateway, module_accounts: dict[str, Account], body: dict[str, Any]
) -> None:
    sent = json.dumps(body)
    reply = gateway.call(
        "POST",
        "/meetings",
        token=module_accounts["host"].token,
        body=sent,
        headers={"Content-Type": "application/json"},
    )
    check(reply, sent)
    if reply.status == 200:
        assert reply.json()["host_id"] == module_accounts["host"].user_id


@FUZZ
@given(body=meeting_bodies)
def test_update_bodies_change_nothing_when_refused(
    gateway: Gateway,
    module_accounts: dict[str, Account],
    host_meeting: dict[str, Any],
    body: dict[str, Any],
) -> None:
    token = module_accounts["host"].token
    path = f"/meetings/{host_meeting['_id']}"
    before = gateway.call("GET", path, token=token).json()
    sent = json.dumps(body)
    reply = gateway.call(
        "PUT", path, token=token, body=sent, headers={"Content-Type": "application/json"}
    )
    check(reply, sent)
    after = gateway.call("GET", path, token=token).json()
    if reply.status == 200:
        assert after == reply.json()
    else:
        assert after == before


@FUZZ
@given(pairs=query_pairs, as_form=st.booleans())
def test_list_queries(
    gateway: Gateway,
    module_accounts: dict[str, Account],
    pairs: list[tuple[str, str]],
    as_form: bool,
) -> None:
    encoded = urllib.parse.urlencode(pairs, safe="[]")
    token = module_accounts["host"].token
    if as_form:  # the JS SDK and the reference's curl: a form body on GET
        reply = gateway.call("GET", "/meetings", token=token, body=encoded)
    else:
        reply = gateway.call("GET", f"/meetings?{encoded}", token=token)
    check(reply, urllib.parse.unquote(encoded) + encoded)
    if reply.status == 200:
        assert isinstance(reply.json(), (list, dict))


@FUZZ
@given(
    raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode),
    method=st.sampled_from(["POST", "PUT", "GET", "DELETE"]),
    path=st.sampled_from(
        [
            "/meetings",
            "/meetings/{id}",
            "/session",
            "/meetings.json",
            "/v2/meetings",
            "/admin/meetings",
            "/meetings/recordings/{id}",
        ]
    ),
    content_type=st.sampled_from(
        ["application/json", "application/x-www-form-urlencoded", "text/plain", ""]
    ),
)
def test_raw_bodies(
    gateway: Gateway,
    module_accounts: dict[str, Account],
    host_meeting: dict[str, Any],
    raw: bytes,
    method: str,
    path: str,
    content_type: str,
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    reply = gateway.call(
        method,
        path.replace("{id}", host_meeting["_id"]),
        token=module_accounts["stranger"].token,
        body=raw,
        headers=headers,
    )
    check(reply, raw)
    # A stranger changes nothing, whatever was sent.
    got = gateway.call(
        "GET", f"/meetings/{host_meeting['_id']}", token=module_accounts["host"].token
    ).json()
    assert got["_id"] == host_meeting["_id"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/meetings", b"\x80", 400),  # found by test_raw_bodies
        ("POST", "/meetings", b'{"name": "\xff\xfe\xed\xa0\x80"}', 400),
        ("GET", "/meetings?%FFcolour=1", None, 400),  # a parameter that is not UTF-8, named
        ("GET", "/meetings?caf%C3%A9=1", None, 422),  # valid UTF-8 is kept as it is
    ],
)
def test_errors_about_invalid_utf8_are_valid_json(
    gateway: Gateway,
    module_accounts: dict[str, Account],
    method: str,
    path: str,
    body: bytes | None,
    status: int,
) -> None:
    reply = gateway.call(
        method,
        path,
        token=module_accounts["host"].token,
        body=body,
        headers={"Content-Type": "application/json"} if body else {},
    )
    assert reply.status == status
    text = reply.body.decode("utf-8")  # strict: raises on invalid UTF-8
    assert "errors" in json.loads(text)
    if "caf" in path:
        assert json.loads(text) == {"errors": {"café": ["is not a supported parameter"]}}
    if "%FF" in path:
        assert json.loads(text) == {"errors": ["\ufffdcolour is not valid UTF-8"]}
