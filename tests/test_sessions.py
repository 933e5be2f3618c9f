"""Users and sessions: sign-in, guests, tokens stored hashed, expiry, sign-out."""

from __future__ import annotations

import hashlib
from typing import Any

import grpc
import pytest

from meetings.v1 import meetings_pb2
from meetings.v1 import sessions_pb2 as pb
from server.domain import applications, auth, errors
from server.storage.models import Session, User
from tests.rpc_helpers import rpc_error, trailers


def sign_in(stub: Any, **user: str) -> pb.SessionResponse:
    app = applications.current()
    result: pb.SessionResponse = stub.CreateSession(
        pb.CreateSessionRequest(
            user=pb.SessionUser(**user), application_id=app.id, auth_key=app.auth_key
        )
    )
    return result


def test_password_sign_in_and_token_use(session_stub: Any, meeting_stub: Any, db: Any) -> None:
    user_id = auth.create_user("Alice", "correct horse battery", "alice@example.com", "Alice A")
    session = sign_in(session_stub, login="alice", password="correct horse battery").session
    assert session.user_id == user_id and len(session.token) >= 40
    assert len(session.id) == 24 and session.created_at.endswith("Z")
    metadata = (("cb-token", session.token),)
    meeting_stub.ListMeetingsPage(meetings_pb2.ListMeetingsPageRequest(), metadata=metadata)
    # The token is stored only as its SHA-256; the password only as an Argon2id hash.
    stored = Session.get()
    assert stored.token_hash == hashlib.sha256(session.token.encode()).hexdigest()
    assert session.token not in {stored.token_hash, stored.id}
    assert str(User.get().password_hash).startswith("$argon2id$")
    got = session_stub.GetSession(pb.GetSessionRequest(), metadata=metadata).session
    # The caller's own token (only its hash is stored), the application, the user.
    assert (got.id, got.token) == (session.id, session.token)
    assert (got.application_id, got.user.login, got.user.email.string_value) == (
        applications.current().id,
        "Alice",
        "alice@example.com",
    )
    session_stub.DeleteSession(pb.DeleteSessionRequest(), metadata=metadata)
    error = rpc_error(
        lambda: meeting_stub.ListMeetingsPage(
            meetings_pb2.ListMeetingsPageRequest(), metadata=metadata
        )
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("login", "password"), [("alice", "wrong password"), ("nobody", "whatever1")]
)
def test_wrong_login_or_password_is_unauthenticated(
    session_stub: Any, db: Any, login: str, password: str
) -> None:
    auth.create_user("alice", "correct horse battery")
    error = rpc_error(lambda: sign_in(session_stub, login=login, password=password))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert trailers(error)["cb-http-status"] == "401"
    assert Session.select().count() == 0


def test_missing_credentials_are_named(session_stub: Any, db: Any) -> None:
    error = rpc_error(lambda: sign_in(session_stub))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert trailers(error)["cb-error-body"] == (
        '{"errors":{"login":["or email is required"],"password":["is required"]}}'
    )


def test_guest_session_creates_a_guest_user(session_stub: Any, meeting_stub: Any, db: Any) -> None:
    session = sign_in(session_stub, guest="1", full_name="Visitor V").session
    guest = User.get_by_id(session.user_id)
    assert (guest.is_guest, guest.full_name, guest.password_hash) == (True, "Visitor V", None)
    page = meeting_stub.ListMeetingsPage(
        meetings_pb2.ListMeetingsPageRequest(), metadata=(("cb-token", session.token),)
    )
    assert page.total_entries == 0
    # A guest has no password: signing in with its login and any password fails.
    error = rpc_error(lambda: sign_in(session_stub, login=guest.login, password="anything1"))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    error = rpc_error(lambda: sign_in(session_stub, guest="1", full_name="  "))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_token_lifetime_follows_the_setting(db: Any) -> None:
    auth.create_user("bob", "correct horse battery")
    short = auth.issue_token("bob", 60)
    assert 59 <= (short.expires_at - short.created_at).total_seconds() <= 60
    caller = auth.authenticate(short.token)
    assert caller.login == "bob" and caller.expires_at == short.expires_at


def test_user_validation(db: Any) -> None:
    with pytest.raises(errors.InvalidFields) as caught:
        auth.create_user("has space", "short", "not-mail")
    assert set(caught.value.fields) == {"login", "password", "email"}
    auth.create_user("carol", "correct horse battery")
    with pytest.raises(errors.InvalidFields) as caught:
        auth.create_user("CAROL", "correct horse battery")
    assert caught.value.fields == {"login": ["has already been taken"]}
