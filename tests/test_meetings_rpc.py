"""Every meeting operation through a real gRPC server on a loopback port."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import grpc

from meetings.v1 import meetings_pb2 as pb
from server.domain import chat, clock
from server.storage.models import RecordingEvent, Session
from tests.conftest import Account
from tests.rpc_helpers import (
    create,
    field_violations,
    get,
    listed,
    m_id,
    rpc_error,
    trailers,
    update,
)


def test_create_returns_every_field_and_the_host(
    meeting_stub: Any, accounts: dict[str, Account]
) -> None:
    host = accounts["host"]
    m = create(
        meeting_stub,
        host,
        attendees=[{"id": 245, "email": ""}, {"id": 343}, {"email": "a@b.co"}],
        chat=True,
        notify=True,
        notify_before=pb.NotifyBefore(metric="minutes", value=10),
        timezone=pb.Timezone(offset=120, name="Europe/Riga"),
    )
    assert len(m_id(m)) == 24 and all(c in "0123456789abcdef" for c in m_id(m))
    assert (m.name, m.start_date, m.end_date, m.host_id) == (
        "Friday weekly sync",
        1613729948,
        1613731012,
        host.user_id,
    )
    # Attendees echo the keys that were given.
    assert [(a.HasField("id"), a.id, a.HasField("email"), a.email) for a in m.attendees] == [
        (True, 245, True, ""),
        (True, 343, False, ""),
        (False, 0, True, "a@b.co"),
    ]
    assert len(m.chat_dialog_id) == 24
    assert (m.notify_before.metric, m.notify_before.value) == ("minutes", 10)
    assert (m.timezone.offset, m.timezone.name) == (120, "Europe/Riga")
    assert m.created_at == m.updated_at and m.created_at.endswith("Z") and len(m.created_at) == 24
    assert (m.record, m.public, m.scheduled, m.notify) == (False, False, False, True)
    assert get(meeting_stub, host, m_id(m)) == m


def test_absent_optional_fields_are_unset(meeting_stub: Any, accounts: dict[str, Account]) -> None:
    m = create(meeting_stub, accounts["host"])
    assert m.chat_dialog_id == ""
    assert not m.HasField("notify_before") and not m.HasField("timezone")
    assert list(m.attendees) == []


def test_invalid_create_names_each_field_and_stores_nothing(
    meeting_stub: Any, accounts: dict[str, Account], db: Any
) -> None:
    error = rpc_error(
        lambda: create(
            meeting_stub,
            accounts["host"],
            name="",
            start_date=1613729948000,
            attendees=[{"email": "nope"}],
            notify_before=pb.NotifyBefore(metric="hours", value=99),
            timezone=pb.Timezone(offset=0, name="Nowhere/City"),
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    # Each violation names the element, from the request down (AIP-193)...
    assert set(field_violations(error)) == {
        "meeting.name",
        "meeting.start_date",
        "meeting.attendees[0].email",
        "meeting.notify_before.value",
        "meeting.timezone.name",
    }
    # ... while REST groups the messages by the body's keys, as the hosted API does.
    body = json.loads(trailers(error)["cb-error-body"])
    assert trailers(error)["cb-http-status"] == "422"
    assert set(body["errors"]) == {"name", "start_date", "attendees", "notify_before", "timezone"}
    assert db.execute_sql("SELECT count(*) FROM meetings").fetchone()[0] == 0


def test_visibility_of_one_meeting(meeting_stub: Any, accounts: dict[str, Account]) -> None:
    host, attendee, mailee, stranger = (
        accounts[k] for k in ("host", "attendee", "mailee", "stranger")
    )
    m = create(
        meeting_stub, host, attendees=[{"id": attendee.user_id}, {"email": "mailee@example.COM"}]
    )
    for who in (host, attendee, mailee):
        assert m_id(get(meeting_stub, who, m_id(m))) == m_id(m)
    missing = rpc_error(lambda: get(meeting_stub, stranger, m_id(m)))
    unknown = rpc_error(lambda: get(meeting_stub, stranger, "0" * 24))
    malformed = rpc_error(lambda: get(meeting_stub, stranger, "not-an-id"))
    # A stranger cannot tell a hidden meeting from one that does not exist.
    for error in (missing, unknown, malformed):
        assert (error.code(), error.details()) == (
            grpc.StatusCode.NOT_FOUND,
            "The resource wasn't found",
        )
    public = create(meeting_stub, host, public=True)
    assert get(meeting_stub, stranger, m_id(public)).public is True


def test_list_shows_hosted_and_attended_only(
    meeting_stub: Any, accounts: dict[str, Account]
) -> None:
    host, attendee, mailee, stranger = (
        accounts[k] for k in ("host", "attendee", "mailee", "stranger")
    )
    a = create(
        meeting_stub, host, start_date=100, end_date=200, attendees=[{"id": attendee.user_id}]
    )
    b = create(
        meeting_stub, host, start_date=50, end_date=60, attendees=[{"email": "MAILEE@example.com"}]
    )
    c = create(meeting_stub, stranger, start_date=10, end_date=20, public=True)
    d = create(
        meeting_stub, attendee, start_date=300, end_date=400, attendees=[{"id": host.user_id}]
    )
    assert listed(meeting_stub, host) == [m_id(b), m_id(a), m_id(d)]  # by start_date
    assert listed(meeting_stub, attendee) == [m_id(a), m_id(d)]
    assert listed(meeting_stub, mailee) == [m_id(b)]
    # Public meetings are visible by id, not listed for everyone.
    assert listed(meeting_stub, stranger) == [m_id(c)]


def test_update_is_partial_and_keeps_the_rest(
    meeting_stub: Any, accounts: dict[str, Account]
) -> None:
    host = accounts["host"]
    m = create(
        meeting_stub,
        host,
        attendees=[{"id": 5}],
        notify=True,
        timezone=pb.Timezone(offset=120, name="Europe/Riga"),
    )
    u = update(meeting_stub, host, m_id(m), record=True)
    assert u.record is True
    assert (u.name, u.start_date, u.end_date, list(u.attendees), u.notify, u.timezone) == (
        m.name,
        m.start_date,
        m.end_date,
        list(m.attendees),
        m.notify,
        m.timezone,
    )
    assert u.updated_at > m.updated_at and u.created_at == m.created_at
    # Setting false explicitly is a change too (field presence), and so is clearing attendees
    # with an update mask.
    u2 = update(meeting_stub, host, m_id(m), record=False, notify=False)
    assert (u2.record, u2.notify) == (False, False)
    u3 = update(meeting_stub, host, m_id(m), mask=["attendees", "timezone"])
    assert list(u3.attendees) == [] and not u3.HasField("timezone")
    assert u3.name == m.name
    assert get(meeting_stub, host, m_id(m)) == u3


def test_update_mask_rejects_unknown_paths_and_host_change(
    meeting_stub: Any, accounts: dict[str, Account]
) -> None:
    host = accounts["host"]
    m = create(meeting_stub, host)
    error = rpc_error(
        lambda: update(meeting_stub, host, m_id(m), mask=["name", "colour"], name="x")
    )
    assert field_violations(error) == {"update_mask": ["unknown field 'colour'"]}
    error = rpc_error(lambda: update(meeting_stub, host, m_id(m), host_id=host.user_id + 1))
    assert field_violations(error) == {"meeting.host_id": ["cannot be changed"]}
    # Echoing the meeting back unchanged (read-only keys included) is fine.
    same = update(meeting_stub, host, m_id(m), host_id=host.user_id, name="renamed")
    assert same.host_id == host.user_id and same.name == "renamed"
    assert get(meeting_stub, host, m_id(m)).name == "renamed"


def test_update_body_id_must_match(meeting_stub: Any, accounts: dict[str, Account]) -> None:
    host = accounts["host"]
    m = create(meeting_stub, host)
    error = rpc_error(lambda: update(meeting_stub, host, m_id(m), id="f" * 24, name="x"))
    assert field_violations(error) == {"meeting.id": ["does not match the meeting being updated"]}
    assert get(meeting_stub, host, m_id(m)).name == m.name


def test_only_the_host_changes_or_deletes(meeting_stub: Any, accounts: dict[str, Account]) -> None:
    host, attendee, stranger = accounts["host"], accounts["attendee"], accounts["stranger"]
    m = create(meeting_stub, host, attendees=[{"id": attendee.user_id}])
    public = create(meeting_stub, host, public=True)
    for meeting in (m, public):
        error = rpc_error(
            lambda: update(
                meeting_stub, attendee if meeting is m else stranger, m_id(meeting), name="hijacked"
            )
        )
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert trailers(error)["cb-http-status"] == "403"
    error = rpc_error(lambda: update(meeting_stub, stranger, m_id(m), name="hijacked"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    for who, code in (
        (attendee, grpc.StatusCode.PERMISSION_DENIED),
        (stranger, grpc.StatusCode.NOT_FOUND),
    ):
        error = rpc_error(
            lambda: meeting_stub.DeleteMeeting(
                pb.DeleteMeetingRequest(id=m_id(m)), metadata=who.metadata
            )
        )
        assert error.code() == code
    assert get(meeting_stub, host, m_id(m)).name == m.name
    meeting_stub.DeleteMeeting(pb.DeleteMeetingRequest(id=m_id(m)), metadata=host.metadata)
    assert rpc_error(lambda: get(meeting_stub, host, m_id(m))).code() == grpc.StatusCode.NOT_FOUND
    assert (
        rpc_error(
            lambda: meeting_stub.DeleteMeeting(
                pb.DeleteMeetingRequest(id=m_id(m)), metadata=host.metadata
            )
        ).code()
        == grpc.StatusCode.NOT_FOUND
    )


def test_concurrent_updates_of_one_meeting_lose_nothing(
    meeting_stub: Any, accounts: dict[str, Account]
) -> None:
    host = accounts["host"]
    m = create(meeting_stub, host)
    fields = [
        ("name", "renamed"),
        ("record", True),
        ("public", True),
        ("scheduled", True),
        ("notify", True),
        ("end_date", 1613739999),
        ("timezone", pb.Timezone(offset=-300, name="America/New_York")),
        ("notify_before", pb.NotifyBefore(metric="hours", value=1)),
    ]
    barrier = threading.Barrier(len(fields))
    failures: list[BaseException] = []

    def change(name: str, value: Any) -> None:
        barrier.wait()
        try:
            update(meeting_stub, host, m_id(m), **{name: value})
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=change, args=f) for f in fields]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    final = get(meeting_stub, host, m_id(m))
    assert (
        final.name,
        final.record,
        final.public,
        final.scheduled,
        final.notify,
        final.end_date,
    ) == ("renamed", True, True, True, True, 1613739999)
    assert final.timezone.name == "America/New_York"
    assert final.notify_before.metric == "hours"


def test_chat_dialog_follows_the_meeting(
    meeting_stub: Any, accounts: dict[str, Account], db: Any
) -> None:
    host, attendee = accounts["host"], accounts["attendee"]
    m = create(
        meeting_stub, host, chat=True, attendees=[{"id": attendee.user_id}, {"email": "x@y.zz"}]
    )
    dialog = m.chat_dialog_id
    assert chat.occupants(dialog) == {host.user_id, attendee.user_id}
    update(meeting_stub, host, m_id(m), attendees=[{"id": 77}])
    assert chat.occupants(dialog) == {host.user_id, 77}
    off = update(meeting_stub, host, m_id(m), chat=False)
    assert off.chat_dialog_id == ""
    assert db.execute_sql("SELECT count(*) FROM chat_dialogs").fetchone()[0] == 0
    on = update(meeting_stub, host, m_id(m), chat=True)
    assert chat.occupants(on.chat_dialog_id) == {host.user_id, 77}
    meeting_stub.DeleteMeeting(pb.DeleteMeetingRequest(id=m_id(m)), metadata=host.metadata)
    assert db.execute_sql("SELECT count(*) FROM chat_dialogs").fetchone()[0] == 0
    assert db.execute_sql("SELECT count(*) FROM chat_dialog_occupants").fetchone()[0] == 0


def test_record_changes_become_events(meeting_stub: Any, accounts: dict[str, Account]) -> None:
    host = accounts["host"]
    m = create(meeting_stub, host)
    update(meeting_stub, host, m_id(m), record=True)
    update(meeting_stub, host, m_id(m), record=True)  # no change, no event
    update(meeting_stub, host, m_id(m), name="still recording")
    update(meeting_stub, host, m_id(m), record=False)
    events = (
        RecordingEvent.select()
        .where(RecordingEvent.meeting_id == m_id(m))
        .order_by(RecordingEvent.id)
    )
    assert [e.action for e in events] == ["start", "stop"]


def test_auth_failures(meeting_stub: Any, accounts: dict[str, Account], db: Any) -> None:
    host = accounts["host"]
    request = pb.ListMeetingsRequest()
    cases = [(), (("cb-token", "forged"),), (("cb-token", ""),)]
    # An expired session is refused like an unknown one.
    Session.update(expires_at=clock.now() - timedelta(seconds=1)).execute()
    cases.append(host.metadata)
    for metadata in cases:
        error = rpc_error(lambda: meeting_stub.ListMeetings(request, metadata=metadata))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error.details() == "Required session does not exist"
        assert json.loads(trailers(error)["cb-error-body"]) == {
            "errors": {"base": ["Required session does not exist"]}
        }


def test_responses_carry_token_expiry_and_request_id(
    meeting_stub: Any, accounts: dict[str, Account]
) -> None:
    host = accounts["host"]
    _, call = meeting_stub.ListMeetingsPage.with_call(
        pb.ListMeetingsPageRequest(), metadata=(*host.metadata, ("x-request-id", "req-123"))
    )
    headers = dict(call.initial_metadata())
    assert headers["x-request-id"] == "req-123"
    assert headers["cb-token-expirationdate"].endswith(" UTC")


def test_paged_list(meeting_stub: Any, accounts: dict[str, Account]) -> None:
    host = accounts["host"]
    made = [m_id(create(meeting_stub, host, start_date=1000 + i, end_date=2000)) for i in range(5)]
    page = meeting_stub.ListMeetingsPage(
        pb.ListMeetingsPageRequest(limit=2, offset=1), metadata=host.metadata
    )
    assert (page.limit, page.skip, page.total_entries) == (2, 1, 5)
    assert [m_id(m) for m in page.items] == made[1:3]
    capped = meeting_stub.ListMeetingsPage(
        pb.ListMeetingsPageRequest(limit=1000), metadata=host.metadata
    )
    assert (capped.limit, len(capped.items)) == (100, 5)
    error = rpc_error(
        lambda: meeting_stub.ListMeetingsPage(
            pb.ListMeetingsPageRequest(limit=0), metadata=host.metadata
        )
    )
    assert field_violations(error) == {"limit": ["must be from 1 to 100"]}


def test_an_update_that_changes_nothing_keeps_the_version(
    meeting_stub: Any, accounts: dict[str, Account]
) -> None:
    host = accounts["host"]
    m = create(meeting_stub, host, attendees=[{"id": 5}], record=True)
    same = update(meeting_stub, host, m_id(m), name=m.name, record=True, attendees=[{"id": 5}])
    assert same == m  # updated_at unchanged
    empty = update(meeting_stub, host, m_id(m))
    assert empty == m
    assert get(meeting_stub, host, m_id(m)) == m
